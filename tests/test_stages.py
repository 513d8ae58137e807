"""The stage runtime with real threads: bounded hand-over, end of stream, stop, abort, one-line errors."""

from __future__ import annotations

import threading
import time

import pytest

from livedepth.core.errors import LivedepthError
from livedepth.core.stages import Channel, Latest, Stages


def test_channel_delivers_everything_in_order_and_stays_bounded():
    channel: Channel[int] = Channel(3)
    stages = Stages("test")
    peak = []

    def produce() -> None:
        for i in range(200):
            assert channel.put(i)
            peak.append(channel.pending)

    received = []

    def consume() -> None:
        for item in channel.items():
            received.append(item)
            time.sleep(0.0005)

    stages.start("produce", produce, on_exit=channel.finish)
    stages.start("consume", consume, on_exit=channel.leave)
    stages.join()
    assert received == list(range(200)) and max(peak) <= 3
    assert stages.error is None and not stages.alive


def test_a_consumer_that_leaves_releases_a_blocked_producer():
    channel: Channel[int] = Channel(1)
    assert channel.put(1)
    result = []
    producer = threading.Thread(target=lambda: result.append(channel.put(2)))
    producer.start()
    time.sleep(0.3)
    assert producer.is_alive(), "a full channel makes the producer wait"
    channel.leave()
    producer.join(5)
    assert result == [False]


def test_the_first_failure_stops_every_stage_and_is_one_line():
    stages = Stages("demo run")
    ended = threading.Event()

    def wait_for_stop() -> None:
        stages.stop_event.wait(30)
        ended.set()

    def fail() -> None:
        raise RuntimeError("boom\nsecond line")

    stages.start("waiter", wait_for_stop)
    stages.start("failer", fail)
    stages.join(10)
    assert ended.is_set() and stages.reason == "error"
    with pytest.raises(LivedepthError) as info:
        stages.raise_error()
    assert str(info.value) == "demo run failed: RuntimeError: boom"


def test_abort_does_not_wait_for_a_stage_stuck_in_work():
    stages = Stages("demo")
    release = threading.Event()
    stages.start("stuck", lambda: release.wait(60))
    stages.abort("interrupted")
    start = time.monotonic()
    stages.join()
    assert time.monotonic() - start < 10  # not the 15 s a plain stop would wait
    assert stages.alive and stages.reason == "interrupted"
    release.set()
    stages.join()
    assert not stages.alive


def test_latest_wait_newer_and_close_wake_readers():
    latest: Latest[str] = Latest()
    assert latest.newest() == (0, None)
    woke = []
    reader = threading.Thread(target=lambda: woke.append(latest.wait_newer(0, 30)))
    reader.start()
    latest.put("a")
    reader.join(5)
    assert woke == [True] and latest.newest() == (1, "a")
    reader = threading.Thread(target=lambda: woke.append(latest.wait_newer(1, 30)))
    reader.start()
    latest.close()
    reader.join(5)
    assert woke == [True, False] and not reader.is_alive()
