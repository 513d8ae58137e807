"""Temporal consistency of frame vs stable normalisation, and of the temporal depth filter.

Every clip comes from ``tests/support/synthetic_scene.py`` (textured scene, camera pan, an object
moving in). Conditions:

- A: the real model with the synthetic test weights (its depth is not coherent between frames);
- B: A with per-frame gain/offset jitter;
- C, D: the flat-wall clip's ground truth with strong jitter (with / without the object);
  a crude proxy: 40% of the view is one flat depth, so P2 sits on it and ``frame`` clips it;
- E, F, G: the MiDaS-like proxy: the ramps-everywhere clip's ground truth as
  ``s_t * D * (1 + e) + b_t`` (``midas_like``: gain and offset +-10%, ``--noise`` 1%); E an object
  walks in and stays, F pan only, G the object walks in and out every 15 frames.

For each normaliser it prints TC and the clipped fraction of the displayed colour output
(the colormap decoded back to grey levels; exact for these lossless frames) and the median
time of ``bounds()`` per 640x480 frame. ``oracle`` (proxies only) knows each frame's true
gain and offset and keeps fixed bounds: the noise floor no causal method can beat.

T (``livedepth.render.temporal.TemporalFilter``, unfiltered vs filtered depth): synthetic clips (pan
with an object walking in, pan only, an object walking in and out, a still camera with an
object walking in) and the real clips in /work/shared/clips with a pseudo truth (a smooth
random field carried along the clip's own optical flow, see :func:`pseudo_truth`). Inputs:
the truth itself (``clean``), the MiDaS-like proxy, the truth plus per-frame non-affine
wobble (an independent smooth random field per frame, 2% or 5% of the truth's range), and 5%
wobble plus per-frame gain/offset jitter. Per scenario: the TC metric (per shot), the error
against the truth after a per-frame affine fit, the object's error in the 4 frames after it
appears (mean of ``--seeds`` noise draws), ms per frame; then the goals, the cost per
640x480 frame and a determinism check. ``--sweep`` adds the design comparison (T2).

    .venv/bin/python benchmarks/temporal_consistency.py [--frames 40] [--proxies-only] [--noise 0.01]
    .venv/bin/python benchmarks/temporal_consistency.py --filter-only [--frames 40] [--clip-frames 125] [--sweep]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import av
import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.golden import save_synthetic_weights
from support.synthetic_scene import SceneClip, midas_like

from livedepth.render.colorize import (
    Colorizer,
    FrameNormalizer,
    Normalizer,
    StableNormalizer,
    apply_colormap,
    scale_to_uint8,
)
from livedepth.inference.estimator import DepthEstimator
from livedepth.render.metrics import ColormapDecoder, temporal_consistency
from livedepth.render.temporal import TemporalFilter

CANDIDATES: dict[str, Callable[[], Normalizer]] = {
    "frame P2-P98": lambda: FrameNormalizer((2.0, 98.0)),
    "ema only (no align)": lambda: StableNormalizer(align=False, expand=0.1, contract=0.1, deadband=0.0),
    "align, no motion, contract 0.1 (old)": lambda: StableNormalizer(motion=False, contract=0.1),
    "align + motion, contract 0.1": lambda: StableNormalizer(contract=0.1),
    "align + motion, no contraction": lambda: StableNormalizer(contract=0.0),
    "stable (default)": lambda: StableNormalizer(),
}


class Oracle:
    """Fixed bounds in the true depth's units, mapped through each frame's true gain and offset."""

    def __init__(self, truth: list[np.ndarray], proxy: list[np.ndarray]) -> None:
        values = np.concatenate([t[::8, ::8].ravel() for t in truth])
        self.lo, self.hi = np.percentile(values, [1.0, 99.0])
        self.affine = [np.polyfit(t[::4, ::4].ravel(), p[::4, ::4].ravel(), 1) for t, p in zip(truth, proxy)]
        self.index = 0

    def bounds(self, depth: np.ndarray) -> tuple[float, float]:
        s, b = self.affine[self.index]
        self.index += 1
        return float(s * self.lo + b), float(s * self.hi + b)

    def reset(self) -> None:
        self.index = 0


def model_depths(frames: list[np.ndarray]) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        estimator = DepthEstimator(weights=save_synthetic_weights(Path(tmp) / "midas_v21_small_256.pt")).load()
        return [estimator.predict(f) for f in frames]


def measure(
    frames: list[np.ndarray], depths: list[np.ndarray], decoder: ColormapDecoder, oracle: Oracle | None = None
) -> dict[str, float]:
    raw = temporal_consistency(zip(frames, depths))
    print(f"  raw depth (float):                        TC {raw.tc:.4f}  (valid {raw.valid_fraction:.0%})")
    makers = dict(CANDIDATES)
    if oracle is not None:
        makers = {"oracle (true gain/offset, fixed)": lambda: oracle, **makers}
    tcs = {}
    for name, make in makers.items():
        norm = make()
        grays, cost = [], []
        for d in depths:
            t0 = time.perf_counter()
            lo, hi = norm.bounds(d)
            cost.append(time.perf_counter() - t0)
            grays.append(scale_to_uint8(d, lo, hi))
        colour = (decoder.decode(apply_colormap(x, decoder.colormap)) for x in grays)
        c = temporal_consistency(zip(frames, colour))
        tcs[name] = c.tc
        print(
            f"  {name:40s}  TC {c.tc:.4f}  clipped {c.clipped_fraction:6.2%}  "
            f"bounds {1000 * np.median(cost):.2f} ms/frame"
        )
    ratio = tcs["stable (default)"] / max(tcs["frame P2-P98"], 1e-12)
    print(f"  -> stable / frame TC = {ratio:.2f}")
    return tcs


def jitter(depths: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    return [d * rng.uniform(0.85, 1.15) + rng.uniform(-0.3, 0.3) * float(np.std(d)) for d in depths]


def measure_proxy(clip: SceneClip, decoder: ColormapDecoder, noise: float) -> dict[str, float]:
    pairs = list(clip.frames())
    depths = [d for _, d in midas_like(pairs, seed=3, noise=noise)]
    return measure([f for f, _ in pairs], depths, decoder, Oracle([d for _, d in pairs], depths))


# --- the temporal filter (livedepth.render.temporal) ---------------------------------------------------

CLIPS_DIR = Path("/work/shared/clips")


@dataclass
class Clip:
    """Frames, their (pseudo) ground-truth depth, and the mask of the object walking in (if any)."""

    name: str
    frames: list[np.ndarray]
    truth: list[np.ndarray]
    masks: list[np.ndarray] | None = None
    cuts: tuple[int, ...] = ()  # frames that start a new shot
    span: float = 0.0  # the truth's P1..P99 range over the clip: the unit of every error below

    def __post_init__(self) -> None:
        if not self.span:
            lo, hi = np.percentile(np.concatenate([t[::8, ::8].ravel() for t in self.truth]), [1.0, 99.0])
            self.span = float(hi - lo)

    def appearances(self) -> list[int]:
        """The frames where the object comes into view."""
        m = self.masks or []
        return [t for t in range(1, len(m)) if m[t].any() and not m[t - 1].any()]


def synthetic_clips(n: int) -> list[Clip]:
    """640x480 clips of tests/support/synthetic_scene.py (ramps everywhere); the object is the only depth above 2.1."""
    specs = {
        "pan, object walks in": {},
        "pan only": {"object_speed": 0.0},
        "object in and out": {"object_return": 15},
        "still camera, object walks in": {"pan_px_per_frame": 0.0},
    }
    clips = []
    for name, kw in specs.items():
        pairs = list(SceneClip(frames_count=n, relief=True, **kw).frames())
        truth = [d for _, d in pairs]
        masks = [t > 2.1 for t in truth] if kw.get("object_speed", 1.0) else None
        clips.append(Clip(name, [f for f, _ in pairs], truth, masks))
    return clips


def read_clip(path: Path, n: int) -> list[np.ndarray]:
    """The first ``n`` frames of a video, BGR."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f, _ in zip(container.decode(video=0), range(n))]


def pseudo_truth(frames: list[np.ndarray], seed: int, cut_level: float = 40.0) -> tuple[list[np.ndarray], list[int]]:
    """A depth-like smooth random field that moves with the clip's own motion.

    The flow from each frame back to the previous one (DIS ``medium`` at full resolution: the
    TC metric's own flow, so the truth's TC is about 0 as on the synthetic clips; the filter
    uses a much coarser DIS ``ultrafast`` on 160 px frames) is composed into a map from every
    pixel to where it was in the shot's first frame; the truth is a fixed smooth field (3
    octaves, features 64-512 px, on a canvas wider than any pan) read at those points. A
    scene cut (mean grey difference from the previous frame above ``cut_level``; on bikes.mp4
    the cuts reach 52-84, the fastest pans 21) starts a new shot with a new field. Coherent
    along the real motion by construction, with no depth edges: occlusions are the synthetic
    clips' job.
    """
    rng = np.random.default_rng(seed)
    h, w = frames[0].shape[:2]
    margin, q = 2048, 4
    ch, cw = (h + 2 * margin) // q, (w + 2 * margin) // q

    def new_field() -> np.ndarray:
        field = np.zeros((ch, cw), np.float32)
        for feature, amp in ((512, 1.0), (192, 0.5), (64, 0.2)):
            cells = rng.normal(size=(max(2, ch * q // feature), max(2, cw * q // feature))).astype(np.float32)
            field += amp * cv2.resize(cells, (cw, ch), interpolation=cv2.INTER_CUBIC)
        return 0.7 + 0.25 * field / field.std()

    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    moved = np.zeros((h, w, 2), np.float32)  # pixel -> its offset to where it was in the shot's first frame
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    field, truth, cuts, prev = new_field(), [], [], None
    for i, frame in enumerate(frames):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if prev is not None:
            if float(np.abs(gray.astype(np.float32) - prev).mean()) > cut_level:
                cuts.append(i)
                field, moved = new_field(), np.zeros_like(moved)
            else:
                where = grid + dis.calc(gray, prev, None)
                moved = where - grid + cv2.remap(moved, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        prev = gray
        coords = (grid + moved + margin) / q - 0.5
        truth.append(cv2.remap(field, coords, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return truth, cuts


def real_clips(n: int) -> list[Clip]:
    """The first ``n`` frames of the real clips, with their pseudo truth."""
    clips = []
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        path = CLIPS_DIR / name
        if not path.exists():
            print(f"  ({path} missing: skipped)")
            continue
        frames = read_clip(path, n)
        truth, cuts = pseudo_truth(frames, seed=11)
        h, w = frames[0].shape[:2]
        clips.append(Clip(f"{path.stem} {w}x{h}, cuts {cuts or 'none'}", frames, truth, cuts=tuple(cuts)))
    return clips


def wobble(truth: np.ndarray, level: float, span: float, rng: np.random.Generator) -> np.ndarray:
    """``truth`` plus a smooth random field (8 cells across, bicubic) with its affine part in
    ``truth`` removed: non-affine, of standard deviation ``level * span``."""
    h, w = truth.shape
    cells = rng.normal(size=(max(2, round(8 * h / w)), 8)).astype(np.float32)
    field = cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC)
    x, y = truth[::4, ::4].ravel().astype(np.float64), field[::4, ::4].ravel().astype(np.float64)
    a, c = np.polyfit(x, y, 1)
    field -= np.float32(a) * truth + np.float32(c)
    return truth + field * np.float32(level * span / field[::4, ::4].std())


def gain_offset(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MiDaS's per-frame scale/shift ambiguity: gain 1 +- 10%, offset +- 10% of the std."""
    return depth * np.float32(rng.uniform(0.9, 1.1)) + np.float32(rng.uniform(-0.1, 0.1) * depth.std())


#: What the model is fed instead of the truth: name -> (clip, seed) -> depth frames.
VARIANTS: dict[str, Callable[[Clip, int], list[np.ndarray]]] = {
    "clean": lambda clip, seed: clip.truth,
    "MiDaS-like 1%": lambda clip, seed: [d for _, d in midas_like(zip(clip.frames, clip.truth), seed=seed)],
    "wobble 2%": lambda clip, seed: _wobbled(clip, seed, 0.02, False),
    "wobble 5%": lambda clip, seed: _wobbled(clip, seed, 0.05, False),
    "wobble 5% + gain/offset": lambda clip, seed: _wobbled(clip, seed, 0.05, True),
}
WOBBLE = ("wobble 2%", "wobble 5%")  # the flicker goal's scenarios
#: Whose depth TC is worth its cost (the metric's flow is most of the run time): with gain/offset
#: jitter it is the TC of the shown colours that counts (the filter keeps each frame's gain/offset).
DEPTH_TC = ("clean", *WOBBLE)


def _wobbled(clip: Clip, seed: int, level: float, jitter: bool) -> list[np.ndarray]:
    rng, span = np.random.default_rng(seed), clip.span
    out = [wobble(t, level, span, rng) for t in clip.truth]
    return [gain_offset(d, rng) for d in out] if jitter else out


def affine_error(depth: np.ndarray, truth: np.ndarray, span: float, mask: np.ndarray | None = None) -> float:
    """RMS error of ``depth`` against ``truth`` after a least-squares affine fit of the whole
    frame (MiDaS depth is relative), over ``mask`` if given, in units of ``span``."""
    a, c = np.polyfit(depth[::2, ::2].ravel().astype(np.float64), truth[::2, ::2].ravel().astype(np.float64), 1)
    err = (a * depth.astype(np.float64) + c - truth)[mask if mask is not None else slice(None)]
    return float(np.sqrt(np.mean(err**2)) / span) if err.size else float("nan")


def object_errors(depths: list[np.ndarray], clip: Clip, frames_after: int = 4) -> list[list[float]]:
    """For k = 0..frames_after-1: the errors on the object k frames after each time it
    appears, over where it is and where it just was (a ghost trail counts)."""
    assert clip.masks is not None
    out: list[list[float]] = [[] for _ in range(frames_after)]
    m = clip.masks
    for t in clip.appearances():
        for k in range(frames_after):
            if t + k < len(depths) and m[t + k].any():
                out[k].append(affine_error(depths[t + k], clip.truth[t + k], clip.span, m[t + k] | m[t + k - 1]))
    return out


def shot_tc(clip: Clip, depths: list[np.ndarray]) -> float:
    """The TC metric of each shot (a pair across a cut is no flicker), pair-weighted mean."""
    bounds = [0, *clip.cuts, len(depths)]
    shots = [(a, b) for a, b in pairwise(bounds) if b - a >= 2]
    tcs = [temporal_consistency(zip(clip.frames[a:b], depths[a:b])).tc for a, b in shots]
    return float(np.average(tcs, weights=[b - a - 1 for a, b in shots]))


def run_filter(make: Callable[[], TemporalFilter], frames: list[np.ndarray], depths: list[np.ndarray]):
    """The filtered depths and the median ms per frame."""
    filt, outs, cost = make(), [], []
    for frame, depth in zip(frames, depths):
        t0 = time.perf_counter()
        outs.append(filt.update(depth, frame))
        cost.append(time.perf_counter() - t0)
    return outs, 1000 * float(np.median(cost[1:]))


@dataclass
class Row:
    scenario: str
    variant: str
    tc: tuple[float, float]  # unfiltered, filtered
    err: tuple[float, float]
    obj: list[tuple[float, float]] | None  # k = 0..3 after the object appears: mean error, unfiltered and filtered
    ms: float
    tc_shown: tuple[float, float] | None = None  # TC of the grey levels shown by the stable normaliser


def measure_filter(clip: Clip, variant: str, make: Callable[[], TemporalFilter], seeds: int) -> Row:
    """One scenario: TC and error on seed 0; the object's errors averaged over ``seeds`` noise draws."""
    depths = VARIANTS[variant](clip, 0)
    outs, ms = run_filter(make, clip.frames, depths)
    tcs = tuple(shot_tc(clip, d) if variant in DEPTH_TC else float("nan") for d in (depths, outs))
    shown = None
    if variant.endswith("gain/offset"):  # what the viewer sees: the stable normaliser cancels gain/offset
        shown = tuple(shot_tc(clip, [norm.normalize(x) for x in seq]) for seq in (depths, outs)
                      for norm in [Colorizer(normalize="stable")])
    span = clip.span
    errs = tuple(float(np.mean([affine_error(d, t, span) for d, t in zip(seq, clip.truth)])) for seq in (depths, outs))
    obj = None
    if clip.masks is not None:
        raw_k: list[list[float]] = [[] for _ in range(4)]
        filt_k: list[list[float]] = [[] for _ in range(4)]
        end = max(clip.appearances()) + 4  # the other draws only need the frames up to the last appearance
        short = replace(clip, frames=clip.frames[:end], truth=clip.truth[:end], masks=clip.masks[:end])
        for seed in range(1 if variant == "clean" else seeds):  # clean input has no noise to draw
            d = depths if seed == 0 else VARIANTS[variant](short, seed)
            o = outs if seed == 0 else run_filter(make, short.frames, d)[0]
            for k, (r, f) in enumerate(zip(object_errors(d, short), object_errors(o, short))):
                raw_k[k] += r
                filt_k[k] += f
        obj = [(float(np.mean(r)), float(np.mean(f))) for r, f in zip(raw_k, filt_k)]
    return Row(clip.name, variant, tcs, errs, obj, ms, shown)


def print_header() -> None:
    print(f"  {'scenario':36s} {'input':24s} {'TC raw':>7s} {'filt':>7s} {'ratio':>5s}  {'err raw':>7s} {'filt':>7s}"
          f"  {'object filt/raw k=0..3':24s} {'raw k=3':>7s} {'ms':>5s}")


def print_row(r: Row) -> None:
    obj = " " * 33
    if r.obj is not None:  # an unfiltered error of 0 (clean input): the filtered error itself, in brackets
        obj = " ".join(f"{f / raw:4.2f}" if raw > 1e-6 else f"({f:.4f})" for raw, f in r.obj)
        obj = f"{obj:24s} {r.obj[3][0]:7.4f}"
    tc = f"{'-':>7s} {'-':>7s} {'-':>5s}"  # not measured (DEPTH_TC)
    if not np.isnan(r.tc[0]):
        tc = f"{r.tc[0]:7.4f} {r.tc[1]:7.4f} {r.tc[1] / max(r.tc[0], 1e-12):5.2f}"
    print(f"  {r.scenario[:36]:36s} {r.variant:24s} {tc}"
          f"  {r.err[0]:7.4f} {r.err[1]:7.4f}  {obj} {r.ms:5.2f}", flush=True)
    if r.tc_shown is not None:
        print(f"  {'':36s} {'  shown, stable normaliser':24s} {r.tc_shown[0]:7.4f} {r.tc_shown[1]:7.4f} "
              f"{r.tc_shown[1] / max(r.tc_shown[0], 1e-12):5.2f}", flush=True)


def cost_640x480(make: Callable[[], TemporalFilter], clip: Clip, passes: int = 7) -> tuple[float, float]:
    """ms of ``update`` per 640x480 frame (warm) on ``clip`` with 5% wobble: the median of all
    frames, and the lowest median of one pass (less sensitive to a busy shared machine)."""
    depths = VARIANTS["wobble 5%"](clip, 0)
    medians, cost = [], []
    for _ in range(passes):
        filt, one = make(), []
        filt.update(depths[0], clip.frames[0])
        for frame, depth in zip(clip.frames[1:], depths[1:]):
            t0 = time.perf_counter()
            filt.update(depth, frame)
            one.append(time.perf_counter() - t0)
        medians.append(1000 * float(np.median(one)))
        cost += one
    return 1000 * float(np.median(cost)), min(medians)


def determinism(clips: list[Clip]) -> bool:
    """The same inputs give bitwise the same outputs: twice at 2 OpenCV threads, once at 1."""
    same = True
    for clip in clips:
        depths = VARIANTS["wobble 5%"](clip, 0)
        runs = []
        for threads in (2, 2, 1):
            cv2.setNumThreads(threads)
            runs.append(run_filter(TemporalFilter, clip.frames, depths)[0])
        cv2.setNumThreads(2)
        same &= all(np.array_equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run))
    return same


class FarnebackFilter(TemporalFilter):
    """The filter with Farneback flow instead of DIS (for the design comparison only)."""

    def _flow(self, gray: np.ndarray, prev_gray: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(gray, prev_gray, None, 0.5, 3, 9, 2, 5, 1.1, 0)


class DisFastFilter(TemporalFilter):
    """The filter with the DIS ``fast`` preset instead of ``ultrafast`` (design comparison only)."""

    def _flow(self, gray: np.ndarray, prev_gray: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_fast"):
            self._fast = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        return self._fast.calc(gray, prev_gray, None)


DESIGNS: dict[str, Callable[[], TemporalFilter]] = {
    "default: DIS ultrafast @160, work @160, history 0.75, gate 2-4": TemporalFilter,
    "flow DIS ultrafast @320 (1/2)": lambda: TemporalFilter(flow_size=320),
    "flow DIS fast @160": DisFastFilter,
    "flow Farneback @160 (1/4)": FarnebackFilter,
    "flow Farneback @320 (1/2)": lambda: FarnebackFilter(flow_size=320),
    "history 0.5": lambda: TemporalFilter(history=0.5),
    "history 0.85": lambda: TemporalFilter(history=0.85),
    "no photometric check": lambda: TemporalFilter(photometric=(1e9, 2e9)),
    "photometric 4-12": lambda: TemporalFilter(photometric=(4.0, 12.0)),
    "photometric 16-48": lambda: TemporalFilter(photometric=(16.0, 48.0)),
    "gate 1.5-3": lambda: TemporalFilter(agree=1.5, disagree=3.0),
    "gate 3-6": lambda: TemporalFilter(agree=3.0, disagree=6.0),
    "work size 320 (1/2)": lambda: TemporalFilter(work_size=320),
    "work size 640 (full)": lambda: TemporalFilter(work_size=640),
}


def filter_benchmark(frames: int, clip_frames: int, seeds: int, sweep: bool) -> None:
    cv2.setNumThreads(2)
    synthetic = synthetic_clips(frames)
    real = real_clips(clip_frames)
    print(f"T: TemporalFilter on synthetic clips ({frames} frames, 640x480) and real clips with a pseudo truth;")
    print("   TC = livedepth.render.metrics flicker; err = RMS error vs truth after a per-frame affine fit, in units")
    print("   of the truth's P1-P99 range; object = the same over the object k frames after it appears")
    print(f"   (mean of {seeds} draws)")
    print_header()
    rows = []
    for clip in synthetic + real:
        for variant in VARIANTS:
            rows.append(measure_filter(clip, variant, TemporalFilter, seeds))
            print_row(rows[-1])
    ms, best = cost_640x480(TemporalFilter, synthetic[0])
    flicker = [r.tc[1] / r.tc[0] for r in rows if r.variant in WOBBLE]
    worse = [(r.scenario, r.variant, r.err[1] - r.err[0]) for r in rows if r.err[1] > r.err[0]]
    worse_noisy = [w for w in worse if w[1] != "clean"]
    ghost = [r.obj[3][1] / r.obj[3][0] for r in rows if r.obj is not None and r.obj[3][0] > 1e-6]
    print("goals:")
    print(f"  flicker <= 0.5x unfiltered on every wobble scenario: worst {max(flicker):.2f}x "
          f"-> {'met' if max(flicker) <= 0.5 else 'MISSED'}")
    print(f"  flicker of the colours shown (stable normaliser) with gain/offset jitter too: worst "
          f"{max(r.tc_shown[1] / r.tc_shown[0] for r in rows if r.tc_shown):.2f}x (the filter keeps each frame's "
          "gain/offset by design; the raw depth's TC above counts it)")
    print(f"  error no worse than unfiltered everywhere: {len(worse)} of {len(rows)} scenarios worse, "
          f"{len(worse_noisy)} of them with noisy input -> {'met' if not worse else 'MISSED'}"
          + "".join(f"\n    {s} / {v}: +{e:.5f} of the range" for s, v, e in worse))
    print(f"  an appearing object within 10% of its unfiltered error by 3 frames: worst k=3 ratio {max(ghost):.2f} "
          f"-> {'met' if max(ghost) <= 1.1 else 'MISSED'}")
    print(f"  <= 3 ms per 640x480 frame at 2 threads: median {ms:.2f} ms (best pass {best:.2f}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores) -> {'met' if ms <= 3.0 else 'MISSED'}")
    print(f"  deterministic (bitwise, twice at 2 threads and once at 1): {determinism([synthetic[0], *real[:1]])}")
    if sweep:
        design_sweep(synthetic, real, seeds)


def design_sweep(synthetic: list[Clip], real: list[Clip], seeds: int) -> None:
    """Variants of the filter on a few scenarios: what each design choice buys."""
    print("T2: design choices: TC filtered/raw, error, object k=3 filtered/raw; ms per 640x480 frame (best pass)")
    cases = [(synthetic[0], "wobble 2%"), (synthetic[3], "wobble 2%"), (synthetic[0], "clean"),
             *[(c, "wobble 2%") for c in real[:1]]]
    print("  cases: " + " | ".join(f"{c.name[:24]}, {v}" for c, v in cases))
    for name, make in DESIGNS.items():
        parts = []
        for clip, variant in cases:
            r = measure_filter(clip, variant, make, seeds)
            part = f"TC {r.tc[1] / r.tc[0]:.2f} err {r.err[1]:.4f}"
            if r.obj is not None and r.obj[3][0] > 1e-6:
                part += f" obj {r.obj[3][1] / r.obj[3][0]:.2f}"
            parts.append(part)
        ms = cost_640x480(make, synthetic[0], passes=3)[1]
        print(f"  {name:62s} {ms:5.2f} ms | " + " | ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-model", action="store_true", help="skip conditions A and B")
    parser.add_argument("--proxies-only", action="store_true", help="run only the MiDaS-like proxies E, F, G")
    parser.add_argument("--noise", type=float, default=0.01, help="the proxies' non-affine noise (default 0.01)")
    parser.add_argument("--filter-only", action="store_true", help="run only the temporal filter's scenarios (T)")
    parser.add_argument("--no-filter", action="store_true", help="skip the temporal filter's scenarios (T)")
    parser.add_argument("--clip-frames", type=int, default=125, help="frames of each real clip for T (default 125)")
    parser.add_argument("--seeds", type=int, default=32, help="noise draws for T's object errors (default 32)")
    parser.add_argument("--sweep", action="store_true", help="also compare T's design choices (T2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.filter_only:
        filter_benchmark(args.frames, args.clip_frames, args.seeds, args.sweep)
        return
    n = args.frames
    decoder = ColormapDecoder("inferno")
    rng = np.random.default_rng(7)
    clip = SceneClip(frames_count=n)
    pairs = list(clip.frames())
    frames = [f for f, _ in pairs]
    print(f"clips: {n} frames 640x480, pan {clip.pan_px_per_frame} px/frame, object {clip.object_speed} px/frame")
    if not (args.skip_model or args.proxies_only):
        depths = model_depths(frames)
        print("A: raw model output (synthetic weights)")
        measure(frames, depths, decoder)
        print("B: A x per-frame gain U(0.85,1.15) + offset U(-0.3,0.3)*std")
        measure(frames, jitter(depths, rng), decoder)
    if not args.proxies_only:
        print("C: flat-wall clip's true depth with the same jitter (crude proxy)")
        measure(frames, jitter([d for _, d in pairs], rng), decoder)
        still = list(SceneClip(frames_count=n, object_speed=0.0).frames())
        print("D: as C, camera pan only (no object)")
        measure([f for f, _ in still], jitter([d for _, d in still], rng), decoder)
    print(f"E: MiDaS-like proxy (ramps, gain/offset +-10%, {args.noise:.1%} noise), object walks in and stays")
    measure_proxy(SceneClip(frames_count=n, relief=True), decoder, args.noise)
    print("F: as E, camera pan only (no object)")
    measure_proxy(SceneClip(frames_count=n, relief=True, object_speed=0.0), decoder, args.noise)
    print("G: as E, the object walks in and out (15 frames each way)")
    measure_proxy(SceneClip(frames_count=n, relief=True, object_return=15), decoder, args.noise)
    if not args.no_filter:
        filter_benchmark(args.frames, args.clip_frames, args.seeds, args.sweep)


if __name__ == "__main__":
    main()
