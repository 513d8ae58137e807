"""The ``livedepth`` command: subcommands, flag/config merging and one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from livedepth.config import Config, load_config
from livedepth.errors import LivedepthError

log = logging.getLogger("livedepth")

#: Exit code for bad input or environment (missing file, bad weights, ...).
EXIT_USAGE = 2


def say(message: str) -> None:
    """The CLI's own output on stdout (results a user asked for, not log lines)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_writable(path: Path) -> None:
    """Raise a one-line error unless ``path`` can be created in an existing, writable folder."""
    folder = path.parent
    if not folder.is_dir():
        raise LivedepthError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise LivedepthError(f"output folder is not writable: {folder}")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="PATH", help="MiDaS v2.1 small checkpoint (midas_v21_small_256.pt)")
    p.add_argument("--config", metavar="FILE", help="TOML config file or preset name from configs/")


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx", "openvino", "int8"),
        help="inference backend (default auto: the fastest installed faithful fp32 one; int8 is opt-in)",
    )


def backend_choice(args: argparse.Namespace, config: Config) -> str:
    """``--backend`` over the config's ``[model] backend``, default ``auto``."""
    return str(config.pick("model", "backend", getattr(args, "backend", None), "auto"))


def _add_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", help="depth, side, overlay or blur (default depth)")
    p.add_argument("--colormap", help="OpenCV colormap name (default inferno)")
    p.add_argument("--normalize", help="frame, stable or fixed (how depth maps to colours)")
    p.add_argument("--range", dest="value_range", metavar="LO,HI", help="depth bounds for --normalize fixed")
    p.add_argument("--invert", action="store_true", default=None, help="far is bright")
    p.add_argument("--alpha", type=float, help="overlay opacity of the depth (default 0.5)")


def _parse_range(text: str | list[float] | None) -> tuple[float, float] | None:
    if text is None:
        return None
    if isinstance(text, (list, tuple)):  # TOML: range = [0.0, 5.0]
        text = ",".join(str(v) for v in text)
    try:
        lo, hi = (float(v) for v in str(text).split(","))
    except ValueError:
        raise LivedepthError(f"--range must be LO,HI (two numbers), got {text!r}") from None
    if not hi > lo:
        raise LivedepthError(f"--range needs LO < HI, got {text!r}")
    return lo, hi


def make_colorizer(args: argparse.Namespace, config: Config, default_normalize: str = "frame"):
    """The Colorizer for a command's render flags over the config's ``[render]`` table."""
    from livedepth.colorize import Colorizer

    pick = config.pick
    return Colorizer(
        colormap=pick("render", "colormap", args.colormap, "inferno"),
        layout=pick("render", "layout", args.layout, "depth"),
        alpha=float(pick("render", "alpha", args.alpha, 0.5)),
        normalize=pick("render", "normalize", args.normalize, default_normalize),
        value_range=_parse_range(pick("render", "range", args.value_range, None)),
        invert=bool(pick("render", "invert", args.invert, False)),
    )


# --- image -----------------------------------------------------------------------------------


def _add_image(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="depth for one image", description="Colorized depth for one image.")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help="output image (.png, .jpg, ...)")
    _add_render(p)
    p.add_argument("--keep-aspect", action="store_true", default=None, help="official keep-aspect input sizing")
    p.add_argument("--raw", type=Path, metavar="DEPTH.npy", help="also save the float32 depth")
    _add_backend(p)
    _add_common(p)
    p.set_defaults(run=_run_image, preset=None)


def _read_image(path: Path):
    import cv2

    if not path.is_file():
        raise LivedepthError(f"input not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise LivedepthError(f"cannot read image: {path} (not an image OpenCV can decode)")
    return image


def _encode_image(image, path: Path) -> bytes:
    import cv2

    ok, buf = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise LivedepthError(f"cannot encode an image as {path.suffix or '(no extension)'}: {path}")
    return buf.tobytes()


def _run_image(args: argparse.Namespace, config: Config) -> int:
    import io

    import cv2
    import numpy as np

    from livedepth.estimator import DepthEstimator

    colorizer = make_colorizer(args, config)
    image = _read_image(args.input)
    check_writable(args.output)
    if args.output.suffix and not cv2.haveImageWriter(str(args.output)):
        raise LivedepthError(f"unsupported output image type: {args.output.suffix}")
    if args.raw is not None:
        check_writable(args.raw)
    estimator = DepthEstimator(
        weights=args.weights,
        size=config.pick("model", "size", None, 256),
        keep_aspect=bool(config.pick("model", "keep_aspect", args.keep_aspect, False)),
        weights_config=config.section("weights"),
        backend=backend_choice(args, config),
    )
    depth = estimator.predict(image)
    rendered = colorizer.render(depth, image)
    write_atomically(args.output, _encode_image(rendered, args.output))
    if args.raw is not None:
        buf = io.BytesIO()
        np.save(buf, depth)
        write_atomically(args.raw, buf.getvalue())
    log.info("wrote %s (%dx%d, %s)", args.output, rendered.shape[1], rendered.shape[0], colorizer.layout)
    return 0


# --- weights ---------------------------------------------------------------------------------


def _add_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="show, fetch or verify the model weights")
    p.add_argument("action", choices=("path", "fetch", "verify"), nargs="?", default="path")
    _add_common(p)
    p.set_defaults(run=_run_weights, preset=None)


def _run_weights(args: argparse.Namespace, config: Config) -> int:
    from livedepth import weights as w
    from livedepth.model import build_model

    spec = w.weights_spec(args.weights, config.section("weights"))
    if args.action == "path":
        if spec.path is not None:
            state = "present" if spec.path.is_file() else "MISSING"
            say(f"{spec.path} (from {spec.origin}, {state})")
        else:
            cached = w.cache_dir() / w.WEIGHTS_FILENAME
            state = "cached" if cached.is_file() else f"not cached; `livedepth weights fetch` downloads {spec.url}"
            say(f"{cached} ({state})")
        return 0
    resolved = w.resolve(spec, allow_download=args.action == "fetch")
    sha = w.load_state_dict_into(build_model(), resolved.path, spec.sha256)
    say(f"{resolved.path} ok sha256={sha} (from {resolved.origin})")
    return 0


# --- live ------------------------------------------------------------------------------------


def _add_live(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live",
        help="live depth preview of a camera, file or stream",
        description="Live depth: capture thread -> newest frame -> inference thread -> window/record.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, metavar="N", help="camera index (default 0)")
    src.add_argument("--input", metavar="PATH_OR_URL", help="video file, or an http(s):// or rtsp:// stream")
    p.add_argument("--realtime", action="store_true", default=None, help="play a file at its native frame rate")
    _add_render(p)
    p.add_argument("--no-display", action="store_true", help="no window (record, serve or measure only)")
    p.add_argument("--record", type=Path, metavar="OUT.mp4", help="also write the shown frames as H.264 mp4")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    p.add_argument("--max-fps", type=float, metavar="F", help="process at most F frames per second (0 = no cap)")
    p.add_argument("--stats", type=Path, metavar="STATS.json", help="write run statistics as JSON at exit")
    p.add_argument("--threads", type=int, metavar="N", help="torch intra-op threads (default: all cores)")
    p.add_argument("--snapshot-dir", type=Path, metavar="DIR", help="where the s key saves PNGs (default .)")
    p.add_argument("--reconnect-timeout", type=float, metavar="S", help="give up on a dropped stream after S s")
    p.add_argument("--serve", metavar="[HOST:]PORT", help="also serve the web page (stream, stats, photo upload)")
    _add_web_auth(p)
    _add_backend(p)
    _add_common(p)
    p.set_defaults(run=_run_live, preset="desktop")


def _live_threads(args: argparse.Namespace, config: Config) -> int:
    threads = int(config.pick("live", "threads", args.threads, 0) or 0)
    if threads < 0:
        raise LivedepthError(f"--threads must be positive, got {threads}")
    if threads:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _live_sinks(args: argparse.Namespace, config: Config, source) -> list:
    """The output sinks for the live command's flags (the window is separate)."""
    from livedepth.sinks import RecordSink

    sinks = []
    if args.record is not None:
        sinks.append(RecordSink(args.record, source.fps))
    web = _web_sink(args, config)
    if web is not None:
        sinks.append(web)
    return sinks


def _run_live(args: argparse.Namespace, config: Config) -> int:
    import json

    pick = config.pick
    threads = _live_threads(args, config)
    colorizer = make_colorizer(args, config, "stable")
    _web_address(args, config)  # a bad --serve or a missing --token fails before the model loads
    for path in (args.record, args.stats):
        if path is not None:
            check_writable(path)
    if args.max_frames is not None and args.max_frames < 1:
        raise LivedepthError(f"--max-frames must be at least 1, got {args.max_frames}")
    max_fps = float(pick("live", "max_fps", args.max_fps, 0) or 0)
    if not max_fps >= 0:
        raise LivedepthError(f"--max-fps must be positive (0 = no cap), got {max_fps:g}")
    display = None
    if not (args.no_display or not pick("live", "display", None, True)):
        from livedepth.display import DisplaySink, check_gui

        check_gui()
        snapshot_dir = Path(pick("live", "snapshot_dir", args.snapshot_dir, "."))
        if not snapshot_dir.is_dir():
            raise LivedepthError(f"snapshot folder does not exist: {snapshot_dir}")
        display = DisplaySink(snapshot_dir=snapshot_dir)

    from livedepth.estimator import DepthEstimator
    from livedepth.pipeline import LivePipeline
    from livedepth.sources import open_source

    estimator = DepthEstimator(
        weights=args.weights,
        size=pick("model", "size", None, 256),
        keep_aspect=bool(pick("model", "keep_aspect", None, False)),
        threads=threads,
        weights_config=config.section("weights"),
        backend=backend_choice(args, config),
    )
    source = open_source(
        camera=args.camera if args.camera is not None else (None if args.input else pick("live", "camera", None, 0)),
        input=args.input,
        realtime=bool(pick("live", "realtime", args.realtime, False)),
        reconnect_timeout=float(pick("live", "reconnect_timeout", args.reconnect_timeout, 30.0)),
    )
    try:
        sinks = _live_sinks(args, config, source)
    except BaseException:
        source.release()
        raise
    pipeline = LivePipeline(source, estimator, colorizer, sinks, display=display, max_frames=args.max_frames,
                            max_fps=max_fps or None)
    _attach_web(pipeline)
    log.info("live: %s, %d torch threads, OMP_WAIT_POLICY=%s%s", source.name, threads, os.environ["OMP_WAIT_POLICY"],
             f", at most {max_fps:g} fps" if max_fps else "")
    try:
        pipeline.run()
    finally:
        stats = pipeline.stats.snapshot()
        if args.stats is not None:
            write_atomically(args.stats, (json.dumps(stats, indent=2) + "\n").encode())
        log.info(
            "%s: %d frames captured, %d processed (%.1f fps), %d dropped, latency p50 %.0f ms",
            pipeline.stop_reason or "ended", stats["frames_captured"], stats["frames_processed"],
            stats["fps_processed"], stats["frames_dropped"], stats["latency_ms"]["p50"],
        )
    return 0


# --- convert ---------------------------------------------------------------------------------


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a video file into a depth video",
        description="Every frame of a video to depth: same timestamps, audio copied, H.264 mp4.",
    )
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help="output video (.mp4, .mov or .mkv)")
    _add_render(p)
    p.add_argument("--raw", type=Path, metavar="PATH", help="also save 16-bit depth: a .mkv (FFV1) or a folder of PNGs")
    p.add_argument("--no-audio", action="store_true", default=None, help="drop the audio")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--keep-damaged", action="store_true", help="keep the output of a damaged input (exit 0)")
    p.add_argument("--crf", type=int, metavar="N", help="H.264 quality, lower is better (default 20)")
    p.add_argument("--preset", dest="x264_preset", metavar="NAME", help="x264 preset (default veryfast)")
    p.add_argument("--threads", type=int, metavar="N", help="torch intra-op threads (default: all cores)")
    p.add_argument("--keep-aspect", action="store_true", default=None, help="official keep-aspect input sizing")
    p.add_argument("--quiet", dest="convert_quiet", action="store_true", help="no progress bar or summary")
    _add_backend(p)
    _add_common(p)
    p.set_defaults(run=_run_convert, preset="convert")


def _run_convert(args: argparse.Namespace, config: Config) -> int:
    import signal

    pick = config.pick
    quiet = args.quiet or args.convert_quiet
    if args.convert_quiet:
        setup_logging(args.verbose, quiet=True)

    from livedepth.convert import Converter, check_outputs, progress_enabled, summary_line
    from livedepth.video import probe

    colorizer = make_colorizer(args, config, "stable")
    crf = int(pick("convert", "crf", args.crf, 20))
    threads = int(pick("convert", "threads", args.threads, 0) or 0)
    if threads < 0 or not 0 <= crf <= 51:
        raise LivedepthError("--threads must be positive and --crf between 0 and 51")
    info = probe(args.input)
    check_outputs(args.input, args.output, args.raw, args.overwrite)

    from livedepth.estimator import DepthEstimator

    estimator = DepthEstimator(
        weights=args.weights,
        size=pick("model", "size", None, 256),
        keep_aspect=bool(pick("model", "keep_aspect", args.keep_aspect, False)),
        threads=threads or None,
        weights_config=config.section("weights"),
        backend=backend_choice(args, config),
    )
    log.info("convert: %s (%dx%d, %.3f fps, %s frames) -> %s", args.input, info.width, info.height, info.fps,
             info.frame_count or "?", args.output)
    result = Converter(
        args.input, args.output, info, estimator.predict, colorizer,
        audio=not (args.no_audio or not pick("convert", "audio", None, True)),
        raw=args.raw,
        crf=crf,
        preset=str(pick("convert", "preset", args.x264_preset, "veryfast")),
        fragmented=bool(pick("convert", "fragmented", None, True)),
        keep_damaged=args.keep_damaged,
        progress=progress_enabled(quiet),
    ).run()
    if result.interrupted:
        sys.stderr.write(f"livedepth: interrupted by {result.interrupted}: wrote {result.frames} finished frames "
                         f"to {result.output} (playable)\n")
        return 128 + int(signal.Signals[result.interrupted])
    if not quiet:
        say(summary_line(result))
    return 0


# --- serve (web page) ------------------------------------------------------------------------


def _add_web_auth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token", help="secret every request must carry (?token=T); default $LIVEDEPTH_TOKEN")
    p.add_argument("--no-auth", action="store_true", default=None, help="serve beyond 127.0.0.1 without a token")


def _web_options(args: argparse.Namespace, config: Config, address: str):
    """The web server's settings from ``[web]`` in the config and the flags."""
    from livedepth.web import WebOptions, check_bind, parse_address

    pick = config.pick
    defaults = WebOptions()
    host, port = parse_address(address, pick("web", "host", None, defaults.host))
    token = args.token if args.token is not None else os.environ.get("LIVEDEPTH_TOKEN") or None
    options = WebOptions(
        host=host,
        port=port,
        token=token,
        no_auth=bool(pick("web", "no_auth", args.no_auth, False)),
        max_clients=int(pick("web", "max_clients", getattr(args, "max_clients", None), defaults.max_clients)),
        jpeg_quality=int(pick("web", "jpeg_quality", getattr(args, "jpeg_quality", None), defaults.jpeg_quality)),
        stream_fps=float(pick("web", "stream_fps", None, defaults.stream_fps)),
        max_upload_bytes=int(float(pick("web", "max_upload_mb", None, defaults.max_upload_bytes / 2**20)) * 2**20),
        max_upload_pixels=int(
            float(pick("web", "max_upload_megapixels", None, defaults.max_upload_pixels / 1e6)) * 1e6
        ),
    )
    if not 1 <= options.jpeg_quality <= 100:
        raise LivedepthError(f"--jpeg-quality must be 1..100, got {options.jpeg_quality}")
    if options.max_clients < 1:
        raise LivedepthError(f"--max-clients must be at least 1, got {options.max_clients}")
    check_bind(options.host, options.token, options.no_auth)
    return options


def _web_address(args: argparse.Namespace, config: Config) -> str | None:
    """``--serve`` (or ``serve`` in the config's ``[web]``), checked; None when not serving."""
    address = config.pick("web", "serve", getattr(args, "serve", None), None)
    if address is not None:
        _web_options(args, config, str(address))
    return None if address is None else str(address)


def _web_sink(args: argparse.Namespace, config: Config):
    """A WebSink for ``--serve`` (or ``serve`` in the config's ``[web]``), else None."""
    address = _web_address(args, config)
    if address is None:
        return None
    from livedepth.web import WebServer, WebSink

    return WebSink(WebServer(_web_options(args, config, address)))


def _attach_web(pipeline) -> None:
    """Connect the pipeline's WebSink (if any) to its stats, colorizer and estimator, and serve."""
    from livedepth.web import WebSink

    for sink in pipeline.sinks:
        if isinstance(sink, WebSink):
            sink.attach(pipeline)
            say(f"serving {sink.server.url()}")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="headless live depth and photo upload in a web page",
        description="Serve a web page: the live depth stream of --camera/--input, stats, layout controls and "
        "photo-to-depth upload. Without a source, only the photo upload.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, metavar="N", help="camera index")
    src.add_argument("--input", metavar="PATH_OR_URL", help="video file, or an http(s):// or rtsp:// stream")
    p.add_argument("--realtime", action="store_true", default=None, help="play a file at its native frame rate")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    _add_web_auth(p)
    p.add_argument("--max-clients", type=int, metavar="N", help="concurrent stream viewers (default 8)")
    p.add_argument("--jpeg-quality", type=int, metavar="Q", help="stream JPEG quality 1..100 (default 80)")
    _add_render(p)
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    p.add_argument("--max-fps", type=float, metavar="F", help="process at most F frames per second (0 = no cap)")
    p.add_argument("--stats", type=Path, metavar="STATS.json", help="write run statistics as JSON at exit")
    p.add_argument("--threads", type=int, metavar="N", help="torch intra-op threads (default: all cores)")
    p.add_argument("--reconnect-timeout", type=float, metavar="S", help="give up on a dropped stream after S s")
    _add_backend(p)
    _add_common(p)
    p.set_defaults(run=_run_serve, preset="desktop", no_display=True, record=None, snapshot_dir=None)


def _run_serve(args: argparse.Namespace, config: Config) -> int:
    pick = config.pick
    host = str(pick("web", "host", args.host, "127.0.0.1"))
    port = int(pick("web", "port", args.port, 8080))
    args.serve = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if args.camera is not None or args.input is not None:
        return _run_live(args, config)
    return _serve_photos(args, config)


def _serve_photos(args: argparse.Namespace, config: Config) -> int:
    """The page with photo upload only, on the main thread until Ctrl+C."""
    from livedepth.web import LockedEstimator, WebServer

    options = _web_options(args, config, args.serve)
    from livedepth.estimator import DepthEstimator

    estimator = DepthEstimator(
        weights=args.weights,
        size=config.pick("model", "size", None, 256),
        keep_aspect=bool(config.pick("model", "keep_aspect", None, False)),
        threads=_live_threads(args, config),
        weights_config=config.section("weights"),
        backend=backend_choice(args, config),
    )
    server = WebServer(options, estimator=LockedEstimator(estimator))
    say(f"serving {server.url()} (photo upload only; add --camera N or --input SRC for live depth)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.close()
    return 0


# --- bench ---------------------------------------------------------------------------------------


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark the backends against the reference forward",
        description="Time the reference-equivalent eager forward and every livedepth backend, interleaved in "
        "one run, with a large SGEMM for this machine's fp32 peak and each backend's start-up time.",
    )
    p.add_argument("--threads", default="1,2", metavar="N[,N...]", help="thread counts (default 1,2)")
    p.add_argument("--size", default="256", metavar="N|HxW[,...]", help="network input sizes (default 256)")
    p.add_argument("--backends", metavar="NAME[,NAME...]", help="backends to time (default: every installed one)")
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed rounds first (default 3)")
    p.add_argument("--reps", type=int, default=20, metavar="N", help="timed rounds (default 20)")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up (process to first frame) runs")
    p.add_argument("--end-to-end", type=int, default=0, metavar="FRAMES",
                   help="also run the seeds' sequential loop against the live pipeline on FRAMES frames")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")
    _add_common(p)
    p.set_defaults(run=_run_bench, preset=None)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise LivedepthError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise LivedepthError(f"{flag} must be positive integers, got {text!r}")
    return values


def _run_bench(args: argparse.Namespace, config: Config) -> int:
    import json

    from livedepth import bench

    if args.json is not None:
        check_writable(args.json)
    if args.warmup < 0 or args.reps < 1:
        raise LivedepthError("--warmup must be >= 0 and --reps >= 1")
    threads = _int_list(args.threads, "--threads")
    sizes = [bench.parse_size(s) for s in args.size.split(",") if s]
    names = [b for b in args.backends.split(",") if b] if args.backends else None
    report = bench.run_bench(
        args.weights,
        sizes=sizes,
        threads=threads,
        backend_names=names,
        warmup=args.warmup,
        reps=args.reps,
        startup=not args.no_startup,
        weights_config=config.section("weights"),
    )
    if args.end_to_end:
        report["end_to_end"] = bench.end_to_end(
            args.weights, "auto", max(threads), args.end_to_end, config.section("weights")
        )
    say(bench.format_table(report))
    if args.json is not None:
        write_atomically(args.json, (json.dumps(report, indent=2) + "\n").encode())
    return 0


# --- metrics ---------------------------------------------------------------------------------


def _add_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="temporal consistency (flicker) of a depth video",
        description="Temporal consistency (TC, lower is steadier) and clipped-pixel fraction of a depth video. "
        "VIDEO is a side-by-side video (input | colorized depth, --layout side); or, with --rgb SOURCE, "
        "a depth-only video (colorized, 8/16-bit grey such as the --raw mkv) or a folder of 16-bit PNGs.",
    )
    p.add_argument("video", type=Path, metavar="VIDEO_OR_DEPTH")
    p.add_argument("--rgb", type=Path, metavar="SOURCE", help="the source video, when VIDEO_OR_DEPTH is depth only")
    p.add_argument("--colormap", default="auto", help="colormap of a colorized depth video (default: guess)")
    p.set_defaults(run=_run_metrics, preset=None, config=None)


def _run_metrics(args: argparse.Namespace, config: Config) -> int:
    from tqdm import tqdm

    from livedepth.colorize import check_colormap
    from livedepth.metrics import TemporalConsistency, depth_pairs

    colormap = args.colormap if args.colormap == "auto" else check_colormap(args.colormap)
    if not args.video.exists():
        raise LivedepthError(f"input not found: {args.video}")
    meter = TemporalConsistency()
    pairs = depth_pairs(args.video, args.rgb, colormap)
    for frame, depth in tqdm(pairs, unit="frame", disable=None, leave=False):
        meter.update(frame, depth)
    result = meter.result()
    if result.frames < 2:
        raise LivedepthError(f"need at least 2 frames to measure, got {result.frames}")
    clipped = "n/a (float depth)" if result.clipped_fraction is None else f"{result.clipped_fraction:.2%}"
    say(f"TC: {result.tc:.4f}")
    say(f"clipped: {clipped}")
    say(f"frames: {result.frames} ({result.valid_fraction:.0%} of pixels passed the occlusion masks)")
    return 0


# --- entry point -----------------------------------------------------------------------------

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_image, _add_weights, _add_live, _add_convert, _add_serve, _add_bench, _add_metrics
)


def build_parser() -> argparse.ArgumentParser:
    """The ``livedepth`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="livedepth", description="Real-time MiDaS depth on the CPU.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Plain one-line log messages on stderr."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="livedepth: %(message)s", stream=sys.stderr, force=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    # Idle OpenMP threads sleep instead of spinning: on 2 cores spinning starved the capture,
    # display and encode threads (measured, README "Live preview"). OpenMP reads this when
    # torch loads, so it is set before any command imports torch; the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        config = load_config(args.config, args.preset)
        return args.run(args, config)
    except LivedepthError as exc:
        sys.stderr.write(f"livedepth: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("livedepth: interrupted\n")
        return 130


def entry(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script, ``python -m livedepth`` and ``run_live.py``.

    Once a command returns, its outputs are closed and its threads have ended, so the process
    leaves with ``os._exit``: the interpreter's teardown of the torch, ONNX Runtime and
    OpenVINO thread pools can otherwise take seconds, or hang while a daemon HTTP thread is
    still inside a forward pass.
    """
    code = main(argv)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to tell anyone
            pass
    os._exit(code)
