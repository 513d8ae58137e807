"""The stage runtime shared by live, convert and batch runs.

- :class:`Latest`: a newest-value holder (a size-1 slot whose ``put`` replaces what nobody took).
- :class:`Channel`: a bounded hand-over between two stages; a full channel makes the producer
  wait, the producer ends it with :meth:`Channel.finish` (in ``finally``), and a consumer that
  leaves releases the producer with :meth:`Channel.leave`.
- :class:`Stages`: the threads of one run with their shared stop event; the first error of any
  stage stops the others and becomes one line (:func:`one_line`) for the caller.

Nothing here installs signal handlers or ends the process: callers stop a run with ``stop()``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from livedepth.core.errors import LivedepthError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often blocked stages look at the stop event (seconds).
POLL_S = 0.1
#: How long a run waits for one of its threads to end after a stop.
JOIN_TIMEOUT_S = 15.0
#: ... and after an abort, which must end the run promptly.
ABORT_JOIN_S = 1.0


class Latest(Generic[T]):
    """The newest value, with a condition for waiters.

    ``put`` replaces a value nobody took (counted in ``dropped``); ``take`` removes and returns
    it, so a value is never handed out twice. ``newest``/``wait_newer`` read it without taking
    it (for many readers, such as web viewers). ``close`` wakes every waiter.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value: T | None = None
        self._untaken = False
        self._seq = 0
        self._waiting = 0
        self._closed = False
        self.dropped = 0

    def put(self, value: T) -> None:
        with self._cond:
            if self._untaken or self._closed:
                self.dropped += 1
            if self._closed:
                return
            self._value, self._untaken = value, True
            self._seq += 1
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest untaken value; ``None`` after ``timeout`` or once closed and empty."""
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
            try:
                if not self._cond.wait_for(lambda: self._untaken or self._closed, timeout):
                    return None
            finally:
                self._waiting -= 1
            if not self._untaken:
                return None
            self._untaken = False
            return self._value

    def wait_demand(self, stop: threading.Event) -> bool:
        """Block until a taker waits on an empty slot; False once closed or stopped."""
        with self._cond:
            while (self._untaken or not self._waiting) and not self._closed and not stop.is_set():
                self._cond.wait(POLL_S)
            return not self._closed and not stop.is_set()

    def newest(self) -> tuple[int, T | None]:
        """(sequence number, value) of the newest value; (0, None) before the first."""
        with self._cond:
            return self._seq, self._value

    def wait_newer(self, seq: int, timeout: float) -> bool:
        """Wait until a value newer than ``seq`` exists; False on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or self._closed, timeout)
            return self._seq > seq and not self._closed

    def close(self, drop: bool = False) -> None:
        """No more values; with ``drop``, an untaken value is dropped (and counted)."""
        with self._cond:
            if drop and self._untaken:
                self._untaken = False
                self.dropped += 1
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class Channel(Generic[T]):
    """A bounded hand-over from one producer stage to one consumer stage."""

    _END = object()

    def __init__(self, size: int) -> None:
        self._queue: queue.Queue = queue.Queue(max(1, size))
        self._left = threading.Event()

    @property
    def pending(self) -> int:
        """Items handed over and not yet taken."""
        return self._queue.qsize()

    def put(self, item: T) -> bool:
        """Wait for room and hand ``item`` over; False once the consumer has left."""
        while not self._left.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def finish(self) -> None:
        """End the stream (call in the producer's ``finally``)."""
        self.put(self._END)  # type: ignore[arg-type]

    def leave(self) -> None:
        """The consumer is gone (call in its ``finally``): producers stop waiting for room."""
        self._left.set()

    def get(self, timeout: float = POLL_S) -> T | None:
        """The next item, ``None`` when nothing came within ``timeout``; raises :class:`EOFError` at the end."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is self._END:
            raise EOFError
        return item

    def items(self, stop: threading.Event | None = None) -> Iterator[T]:
        """Every item until the end, or until ``stop`` is set."""
        while stop is None or not stop.is_set():
            try:
                item = self.get()
            except EOFError:
                return
            if item is not None:
                yield item


class Stages:
    """The threads of one run and their shared stop event.

    ``start`` runs a function in a daemon thread; its exception is kept and stops the run.
    ``stop`` asks every stage to end (thread-safe, idempotent), ``abort`` also tells them to
    drop work in flight. ``join`` waits for them, and ``raise_error`` re-raises the first
    failure as one line.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.stop_event = threading.Event()
        self.abort_event = threading.Event()
        self.reason: str | None = None
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def start(self, name: str, target: Callable[[], None], on_exit: Callable[[], None] | None = None) -> None:
        """Run ``target`` in a thread named ``livedepth-NAME``; ``on_exit`` always runs after it."""

        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - kept, and raised by raise_error
                self.fail(exc)
            finally:
                if on_exit is not None:
                    try:
                        on_exit()
                    except BaseException as exc:  # noqa: BLE001
                        self.fail(exc)

        thread = threading.Thread(target=run, name=f"livedepth-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def fail(self, exc: BaseException) -> None:
        """Record a stage's failure and stop the run."""
        with self._lock:
            self._errors.append(exc)
        self.stop("error")

    def stop(self, reason: str = "stopped") -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self.stop_event.set()

    def abort(self, reason: str = "aborted") -> None:
        """Stop at once: stages drop what they hold instead of finishing it."""
        self.abort_event.set()
        self.stop(reason)

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Stop and wait for every stage; one that does not end in ``timeout`` is logged and left."""
        self.stop(self.reason or "end")
        if self.abort_event.is_set():
            timeout = min(timeout, ABORT_JOIN_S)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                level = logging.DEBUG if self.abort_event.is_set() else logging.WARNING
                log.log(level, "%s did not end within %.0f s; leaving it", thread.name, timeout)

    @property
    def error(self) -> BaseException | None:
        return self._errors[0] if self._errors else None

    def raise_error(self) -> None:
        """Raise the first stage failure as a one-line :class:`LivedepthError`, if any."""
        if self._errors:
            raise one_line(self._errors[0], f"{self.name} failed")


def one_line(exc: BaseException, what: str) -> LivedepthError:
    """``exc`` as a one-line user error (its traceback goes to the debug log)."""
    if isinstance(exc, LivedepthError):
        return exc
    log.debug("%s", what, exc_info=exc)
    text = str(exc).strip()
    detail = f": {text.splitlines()[0]}" if text else ""
    return LivedepthError(f"{what}: {type(exc).__name__}{detail}")
