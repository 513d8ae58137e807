"""The capture stage of a live run: reads a source into a holder that keeps only the newest frame."""

from __future__ import annotations

import threading

from livedepth.core.frames import Frame
from livedepth.core.stages import Latest
from livedepth.io.source import Source


class Capture:
    """Reads a source into a :class:`Latest` holder: the capture stage of a live run.

    Paced sources are read continuously (the newest frame wins). Unpaced files are decoded on
    demand: a frame is read only while inference waits for one, so nothing spins. ``run``
    ends at the end of the source or on ``stop``; ``close`` releases the source and closes the
    holder, so the stage after it ends too.
    """

    def __init__(self, source: Source, holder: Latest[Frame], stop: threading.Event) -> None:
        self.source = source
        self.holder = holder
        self.stop = stop
        self.captured = 0

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.source.paced and not self.holder.wait_demand(self.stop):
                return
            image = self.source.read(self.stop)
            if image is None:
                return
            self.holder.put(Frame(image, self.captured, self.source.capture_time()))
            self.captured += 1

    def close(self) -> None:
        self.source.release()
        self.holder.close()
