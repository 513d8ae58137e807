"""``livedepth live`` (a window, a recording, a web page) and ``livedepth serve`` (the web page only)."""

from __future__ import annotations

import argparse

from livedepth.cli.common import Interrupts, add_config_flags, add_setting_flags, say, settings_from

#: Both commands colour video with the stable normalisation unless told otherwise.
DEFAULTS = {("render", "normalize"): "stable"}
SOURCE_FLAGS = ("camera", "input", "realtime", "reconnect_timeout", "max_fps", "max_frames", "stats")
WEB_FLAGS = ("token", "no_auth", "uploads")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="live depth preview of a camera, file or stream",
                       description="Live depth: capture thread -> newest frame -> inference thread -> "
                       "window, recording or web page.")
    add_setting_flags(p, "live")
    add_setting_flags(p, "web", "serve", *WEB_FLAGS)
    add_setting_flags(p, "render")
    add_setting_flags(p, "stereo")
    add_setting_flags(p, "pointcloud")
    add_setting_flags(p, "model")
    add_config_flags(p, preset="desktop")
    p.set_defaults(run=run_live)

    p = sub.add_parser("serve", help="headless live depth and photo upload in a web page",
                       description="Serve a web page: the live depth stream of --camera/--input, stats, layout "
                       "controls and photo-to-depth upload. Without a source, only the photo upload.")
    add_setting_flags(p, "live", *SOURCE_FLAGS)
    add_setting_flags(p, "web", "host", "port", "max_clients", "jpeg_quality", *WEB_FLAGS)
    add_setting_flags(p, "render")
    add_setting_flags(p, "stereo")
    add_setting_flags(p, "model")
    add_config_flags(p, preset="desktop")
    p.set_defaults(run=run_serve)


def run_live(args: argparse.Namespace) -> int:
    return _run(args, serve=False, with_source=True)


def run_serve(args: argparse.Namespace) -> int:
    with_source = getattr(args, "live.camera") is not None or getattr(args, "live.input") is not None
    return _run(args, serve=True, with_source=with_source)


def _run(args: argparse.Namespace, serve: bool, with_source: bool) -> int:
    from livedepth.app.live import build_live_run  # on use: torch takes seconds to import

    run = build_live_run(settings_from(args, DEFAULTS), weights=args.weights, serve=serve, with_source=with_source)
    if run.server is not None:
        hint = "" if with_source else " (photo upload only; add --camera N|picam or --input SRC for live depth)"
        first, *others = run.server.urls()
        say(f"serving {first}{hint}")
        for url in others:
            say(f"serving {url}")
    with Interrupts(run) as interrupts:
        run.run()
    return interrupts.exit_code or 0
