"""The one place that builds a live run from settings: source, estimator, colorizer, sinks, web.

Data flows one way: source -> capture thread -> newest frame -> inference thread -> colorizer
-> sinks (record, window, web), on the thread that calls :meth:`LiveRun.run`. The web server
gets the estimator (photo uploads), the run's stats and its colorizer when it is built. Signals
are the caller's: map them to :meth:`LiveRun.stop` (and a second one to :meth:`LiveRun.abort`).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from pathlib import Path

from livedepth.app.estimator import build_estimator
from livedepth.app.render import build_colorizer, make_temporal
from livedepth.core.errors import LivedepthError
from livedepth.core.files import check_writable, write_json
from livedepth.core.stages import POLL_S, StagedRun, Stages
from livedepth.io.display import DisplaySink, check_gui
from livedepth.io.pointcloud import Camera
from livedepth.io.sinks import RecordSink
from livedepth.io.sources import check_camera, open_source
from livedepth.run.pipeline import LivePipeline
from livedepth.settings import Settings, WebSettings
from livedepth.web.server import WebServer, WebSink, check_bind, parse_address

log = logging.getLogger(__name__)


class LiveRun(StagedRun):
    """A built live run: a pipeline with its sinks, or (``pipeline`` None) the photo page only,
    which has no stage threads and serves until ``stop()``."""

    def __init__(self, pipeline: LivePipeline | None, server: WebServer | None, stats_path: Path | None) -> None:
        self.pipeline = pipeline
        self.server = server
        self.stats_path = stats_path
        self.stages = pipeline.stages if pipeline is not None else Stages("photo page")

    def run(self) -> dict:
        """Run until the end of the input or ``stop()``; returns the run's statistics."""
        if self.pipeline is None:
            try:
                while not self.stages.stop_event.wait(POLL_S):
                    pass
            finally:
                if self.server is not None:
                    self.server.close()
            return {}
        try:
            self.pipeline.run()
        finally:
            stats = self.pipeline.stats.snapshot()
            if self.stats_path is not None:
                write_json(self.stats_path, stats)
            log.info("live run ended (%s): %d frames captured, %d processed (%.1f fps), %d dropped, "
                     "latency p50 %.0f ms", self.stop_reason or "end", stats["frames_captured"],
                     stats["frames_processed"], stats["fps_processed"], stats["frames_dropped"],
                     stats["latency_ms"]["p50"])
        return stats


def first_frames(source, count: int = 8) -> list:
    """The source's first frames, for the int8 backend to be calibrated on (they are not shown)."""
    stop = threading.Event()
    frames = [image for image in (source.read(stop) for _ in range(count)) if image is not None]
    log.info("int8: calibrating on the first %d frames of %s", len(frames), source.name)
    return frames


def served_web(settings: Settings, serve: bool) -> WebSettings | None:
    """``[web]`` as served (None: not at all): at ``host``/``port`` for ``serve``, at ``[web] serve``
    for ``live``; the token defaults to ``$LIVEDEPTH_TOKEN``. Refuses (one line) a non-loopback
    address without a token."""
    web = settings.web
    if not serve and web.serve is None:
        return None
    host, port = (web.host, web.port) if serve else parse_address(web.serve, web.host)
    token = web.token if web.token is not None else os.environ.get("LIVEDEPTH_TOKEN") or None
    check_bind(host, token, web.no_auth)
    return replace(web, host=host, port=port, token=token)


def build_live_run(settings: Settings, *, weights: str | Path | None = None, serve: bool = False,
                   with_source: bool = True) -> LiveRun:
    """Build (and start serving, if asked) a live run; cheap checks come before the model loads.

    ``serve`` is the ``serve`` command (web on ``[web] host:port``, no window); ``with_source``
    False serves the photo page only. ``weights`` is ``--weights``.
    """
    live = settings.live
    colorizer = build_colorizer(settings.render, settings.stereo)
    web = served_web(settings, serve)
    for path in (live.record, live.stats):
        if path is not None:
            check_writable(path)
    if not with_source and not settings.web.uploads:
        raise LivedepthError("nothing to serve: without --camera or --input the page is the photo upload, "
                             "which is turned off (--no-uploads or [web] uploads = false)")
    display = live.display and not serve and with_source
    if display:
        check_gui()
        if not live.snapshot_dir.is_dir():
            raise LivedepthError(f"snapshot folder does not exist: {live.snapshot_dir}")

    if not with_source:
        server = WebServer(web, estimator=build_estimator(settings, weights), stereo=settings.stereo)
        return LiveRun(None, server.start(), None)
    if live.input is None:
        check_camera(live.camera)
    source = open_source(camera=live.camera, input=live.input, realtime=live.realtime,
                         reconnect_timeout=live.reconnect_timeout)
    try:
        calibration = first_frames(source) if settings.model.backend == "int8" else None
        estimator = build_estimator(settings, weights, calibration)
        pipeline = LivePipeline(source, estimator, colorizer, max_frames=live.max_frames, max_fps=live.max_fps,
                                temporal=make_temporal(settings))
        if live.record is not None:
            pipeline.add_sink(RecordSink(live.record, source.fps))
        if display:
            camera = Camera(settings.pointcloud.fov, settings.pointcloud.depth_ratio)
            pipeline.add_sink(DisplaySink(colorizer, pipeline.stop, pipeline.stats.status_line, live.snapshot_dir,
                                          camera=camera))
        server = None
        if web is not None:
            server = WebServer(web, estimator=estimator, stats=pipeline.stats.snapshot, colorizer=colorizer,
                               stereo=settings.stereo)
            pipeline.add_sink(WebSink(server.start()))
    except BaseException:
        source.release()
        raise
    log.info("live: %s, %s", source.name, f"at most {live.max_fps:g} fps" if live.max_fps else "no fps cap")
    return LiveRun(pipeline, server, live.stats)
