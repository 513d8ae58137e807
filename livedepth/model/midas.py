"""MiDaS v2.1 small (``MidasNet_small``) on timm's ``tf_efficientnet_lite3``: the ``midas-small`` model.

The module tree reproduces the official checkpoint's key layout exactly, so the
official ``midas_v21_small_256.pt`` loads unchanged with ``strict=True``. The official
transform (``small_transform``) and the bicubic upsampling back to the frame are here too.
timm is imported only where the network is built: it takes seconds, and a warm export cache
never builds the network.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livedepth.model.registry import ModelSpec, WeightsSource

__all__ = ["SPEC", "MidasSmall", "build_model", "fold_batchnorm", "network_size", "postprocess", "preprocess",
           "runtime_form", "export_form", "static_padding"]

WEIGHTS = WeightsSource(
    filename="midas_v21_small_256.pt",
    # the URL MiDaS's hubconf.py uses for MiDaS_small; the release publishes no SHA-256
    url="https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_small_256.pt",
    sha256=None,
)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

#: Channels of the four backbone taps (strides 4, 8, 16, 32).
BACKBONE_CHANNELS = (32, 48, 136, 384)
#: Channels of the decoder's projected taps (``scratch.layerK_rn``), ``expand=True``.
DECODER_CHANNELS = (64, 128, 256, 512)


class _Backbone(nn.Module):
    """timm's tf_efficientnet_lite3 regrouped into the official ``pretrained.layerK``."""

    def __init__(self) -> None:
        super().__init__()
        import timm  # here, not at the top: see the module's docstring

        net = timm.create_model(
            "tf_efficientnet_lite3", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4)
        )
        # timm's bn1 already applies ReLU6; index 2 (the official standalone ReLU6) has no params.
        self.layer1 = nn.Sequential(net.conv_stem, net.bn1, nn.Identity(), net.blocks[0], net.blocks[1])
        self.layer2 = nn.Sequential(net.blocks[2])
        self.layer3 = nn.Sequential(net.blocks[3], net.blocks[4])
        self.layer4 = nn.Sequential(net.blocks[5], net.blocks[6])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        l4 = self.layer4(l3)
        return l1, l2, l3, l4


class ResidualConvUnit(nn.Module):
    """``conv2(relu(conv1(relu(x)))) + x``; the input is never modified in place."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    """Official ``FeatureFusionBlock_custom`` (no BN, bilinear x2 with ``align_corners=True``).

    The 1x1 ``out_conv`` commutes with the bilinear upsample (both are linear and the
    interpolation weights of each output pixel sum to one), so it runs first, at a quarter
    of the pixels. ``reference=True`` keeps the official order (upsample, then conv) for
    benchmarking against the original. ``resConfUnit1`` of a single-input block is kept only
    so that the official checkpoint loads; it is never run, as in the official forward.
    """

    def __init__(self, channels: int, out_channels: int, reference: bool = False) -> None:
        super().__init__()
        self.reference = reference
        self.out_conv = nn.Conv2d(channels, out_channels, 1, bias=True)
        self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if self.reference:
            return self.out_conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))
        return F.interpolate(self.out_conv(x), scale_factor=2, mode="bilinear", align_corners=True)


class _Upsample2x(nn.Module):
    """Bilinear x2 with ``align_corners=False`` (the head's ``Interpolate``, no params)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class _Decoder(nn.Module):
    """The official ``scratch`` module: projections, four fusion blocks and the head."""

    def __init__(self, reference: bool = False) -> None:
        super().__init__()
        for k, (cin, cout) in enumerate(zip(BACKBONE_CHANNELS, DECODER_CHANNELS), start=1):
            self.add_module(f"layer{k}_rn", nn.Conv2d(cin, cout, 3, padding=1, bias=False))
        self.refinenet4 = FeatureFusionBlock(512, 256, reference)
        self.refinenet3 = FeatureFusionBlock(256, 128, reference)
        self.refinenet2 = FeatureFusionBlock(128, 64, reference)
        self.refinenet1 = FeatureFusionBlock(64, 64, reference)
        self.output_conv = nn.Sequential(
            nn.Conv2d(64, 32, 3, padding=1),
            _Upsample2x(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
        )

    def forward(self, l1: torch.Tensor, l2: torch.Tensor, l3: torch.Tensor, l4: torch.Tensor) -> torch.Tensor:
        path = self.refinenet4(self.layer4_rn(l4))
        path = self.refinenet3(path, self.layer3_rn(l3))
        path = self.refinenet2(path, self.layer2_rn(l2))
        path = self.refinenet1(path, self.layer1_rn(l1))
        return self.output_conv(path)


class MidasSmall(nn.Module):
    """MiDaS v2.1 small: normalised ``(N, 3, H, W)`` -> inverse relative depth ``(N, H, W)``.

    H and W must be multiples of 32. ``reference=True`` runs the fusion blocks in the
    official order (see ``FeatureFusionBlock``); the parameters are the same either way.
    """

    def __init__(self, reference: bool = False) -> None:
        super().__init__()
        self.pretrained = _Backbone()
        self.scratch = _Decoder(reference)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"input height and width must be multiples of 32, got {tuple(x.shape[-2:])}")
        return self.scratch(*self.pretrained(x)).squeeze(1)


def build_model(reference: bool = False) -> MidasSmall:
    """An uninitialised MiDaS small in eval mode (no download, no weights)."""
    return MidasSmall(reference).eval()


class _Activation(nn.Module):
    """What is left of timm's ``BatchNormAct2d`` once its BN is folded into the conv before it."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias.detach() - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias.detach() * scale
    conv.weight = nn.Parameter(conv.weight.detach() * scale[:, None, None, None])
    conv.bias = nn.Parameter(bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that directly follows a conv into that conv, in place.

    In timm's EfficientNet blocks (and ``pretrained.layer1``) each conv's BN is its next
    registered sibling; the BN's activation is kept. Returns ``model``.
    """
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (_, first), (name, second) in zip(children, children[1:]):
            if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                _fold_into(first, second)
                act = getattr(second, "act", nn.Identity())
                setattr(parent, name, _Activation(act) if not isinstance(act, nn.Identity) else nn.Identity())
    return model


class _PaddedConv(nn.Module):
    """A TF "same" conv with its padding fixed for one input size."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.pads = pads
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pads))


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def static_padding(model: nn.Module, height: int, width: int) -> nn.Module:
    """Replace timm's dynamic "same" padding convs by fixed pads for one input size, in place.

    The exported graph then has no shape arithmetic (which ONNX quantization mishandles).
    Returns ``model``.
    """
    from timm.layers import Conv2dSame  # only a built network (which imported timm) has these

    sizes: dict[nn.Module, tuple[int, int]] = {}
    same = [m for m in model.modules() if isinstance(m, Conv2dSame)]

    def record(module: nn.Module, inputs: tuple) -> None:
        sizes[module] = tuple(inputs[0].shape[-2:])

    _probe(model, height, width, [m.register_forward_pre_hook(record) for m in same])
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if child not in sizes:
                continue
            ih, iw = sizes[child]
            top, bottom = _same_pad(ih, child.kernel_size[0], child.stride[0], child.dilation[0])
            left, right = _same_pad(iw, child.kernel_size[1], child.stride[1], child.dilation[1])
            conv = nn.Conv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                padding=0,
                dilation=child.dilation,
                groups=child.groups,
                bias=child.bias is not None,
            )
            conv.weight = child.weight
            conv.bias = child.bias
            setattr(parent, name, _PaddedConv(conv, (left, right, top, bottom)))
    return model


def _probe(model: nn.Module, height: int, width: int, handles: list) -> None:
    """One forward on zeros so that the hooks behind ``handles`` see it; then remove them."""
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, height, width))
    finally:
        for handle in handles:
            handle.remove()


def runtime_form(model: nn.Module) -> nn.Module:
    """What the torch backend runs (``model`` is a copy, changed in place): BN folded into the
    convs, and the first fusion block's residual unit, which the forward never runs, dropped."""
    fast = fold_batchnorm(model).eval()
    fast.scratch.refinenet4.resConfUnit1 = None
    return fast


def export_form(model: nn.Module, height: int, width: int) -> nn.Module:
    """What is exported for one input size: the runtime form with the "same" padding fixed."""
    return static_padding(runtime_form(model), height, width)


def network_size(height: int, width: int, size: int = 256, keep_aspect: bool = False) -> tuple[int, int]:
    """The network's input (height, width) for a frame.

    Square mode gives ``(size, size)``. Keep-aspect mode is the official ``small_transform``:
    scale by ``min(size/H, size/W)``, round each side to a multiple of 32 (half to even),
    and floor instead where rounding would exceed ``size``.
    """
    if not keep_aspect:
        return size, size
    scale = min(size / height, size / width)

    def snap(x: float) -> int:
        y = int(np.round(x / 32) * 32)
        return int(np.floor(x / 32) * 32) if y > size else y

    return snap(scale * height), snap(scale * width)


def preprocess(frame_bgr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """BGR uint8 HxWx3 -> normalised float32 ``(1, 3, h, w)``, as the official transform.

    The frame is scaled to [0, 1] before the bicubic resize (resizing uint8 first is wrong),
    with no clipping or antialiasing.
    """
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(1 / 255)
    h, w = out_hw
    resized = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
    normalised = (resized - MEAN) / STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])


def postprocess(depth: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """The network's ``(h, w)`` output upsampled to the frame: ``cv2.INTER_CUBIC`` matches the
    official bicubic upsampling (``align_corners=False``) within the golden tests' bar, at a
    fraction of torch's cost (README, "Fidelity")."""
    height, width = frame_hw
    if depth.shape != (height, width):
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(depth, dtype=np.float32)


def reference_model() -> MidasSmall:
    """The network with the fusion blocks in the official order (``livedepth bench`` times it)."""
    return build_model(reference=True)


SPEC = ModelSpec(
    name="midas-small",
    build_network=build_model,
    weights=WEIGHTS,
    size_multiple=32,
    default_size=256,
    size_rule="a multiple of 32 (default 256): square size x size, or with --keep-aspect the long side",
    input_size=network_size,
    preprocess=preprocess,
    postprocess=postprocess,
    adapt_state_dict=dict,  # the official keys, as they are
    parameters="21M",
    license="MIT",
    description="MiDaS v2.1 small (2021): EfficientNet-Lite3 encoder, fast on a CPU",
    runtime_form=runtime_form,
    export_form=export_form,
    build_reference=reference_model,
)
