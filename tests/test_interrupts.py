"""The CLI's signal handling on real signals: a first one stops the target, a second one aborts a
staged run, and a pool (anything with only ``stop``) is stopped once."""

from __future__ import annotations

import os
import signal

from livedepth.cli.common import Interrupts
from livedepth.core.stages import StagedRun, Stages


class Run(StagedRun):
    def __init__(self) -> None:
        self.stages = Stages("test run")


class Pool:
    """Like the batch pools: it can only be stopped."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def stop(self, reason: str = "stopped") -> None:
        self.reasons.append(reason)


def test_a_first_signal_stops_a_staged_run_and_a_second_aborts_it() -> None:
    run = Run()
    run.stages.start("wait", lambda: run.stages.stop_event.wait(30))
    previous = signal.getsignal(signal.SIGINT)
    with Interrupts(run) as interrupts:
        assert run.busy
        os.kill(os.getpid(), signal.SIGINT)
        assert run.stages.stopping and not run.stages.abort_event.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert run.stages.abort_event.is_set()
        run.stages.join()
        assert not run.busy
    assert run.stop_reason == "interrupted"
    assert interrupts.exit_code == 130 and interrupts.signal_name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is previous, "the handlers are put back"


def test_a_pool_is_stopped_once_whatever_the_signals() -> None:
    pool = Pool()
    with Interrupts(pool) as interrupts:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert pool.reasons == ["terminated"]
    assert interrupts.exit_code == 143
