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


def _add_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", help="depth, side or overlay (default depth)")
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


# --- entry point -----------------------------------------------------------------------------

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_image, _add_weights)


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
    try:
        config = load_config(args.config, args.preset)
        return args.run(args, config)
    except LivedepthError as exc:
        sys.stderr.write(f"livedepth: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("livedepth: interrupted\n")
        return 130


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
