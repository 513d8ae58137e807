"""Depth Anything V2 Small: timm's DINOv2 ViT-S/14 encoder and a DPT head, as the official code.

The module tree reproduces the official checkpoint's key layout (``pretrained.*`` is the timm
encoder, ``depth_head.*`` the head), so ``depth_anything_v2_vits.pth`` loads with ``strict=True``
once :func:`adapt_state_dict` has dropped the training-only ``pretrained.mask_token``.

Reference: github.com/DepthAnything/Depth-Anything-V2 at a561b849, ``DepthAnythingV2(encoder='vits',
features=64, out_channels=[48, 96, 192, 384])``; ``image2tensor`` and ``infer_image`` for the
pre- and postprocessing. timm is imported only where the network is built: it takes seconds,
and ``livedepth models`` or a warm export cache never builds the network.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livedepth.core.errors import LivedepthError, WeightsError
from livedepth.model.registry import ModelSpec, WeightsSource

NAME = "depth-anything-v2-small"
#: The ViT's patch size: network inputs are multiples of it.
PATCH = 14
#: The checkpoint's position-embedding grid (a 518x518 input), resampled for every other input.
POS_GRID = 37
#: The official ``interpolate_offset``: the resampling scale is ``(g + 0.1) / 37``, not ``g / 37``.
POS_OFFSET = 0.1
#: Blocks whose (normalised) outputs feed the head.
TAPPED_BLOCKS = (2, 5, 8, 11)
EMBED_DIM = 384
#: Channels of the head's four projected taps, and of its fusion path.
TAP_CHANNELS = (48, 96, 192, 384)
FEATURES = 64
DEFAULT_SIZE = 518

#: ImageNet's RGB mean and standard deviation, one per channel plane.
MEAN = np.array([0.485, 0.456, 0.406])[:, None, None]
STD = np.array([0.229, 0.224, 0.225])[:, None, None]

WEIGHTS = WeightsSource(
    filename="depth_anything_v2_vits.pth",
    url="https://huggingface.co/depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth",
    sha256="715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378",  # its Hugging Face LFS details
    size_bytes=99_218_434,
)
SIZE_RULE = ("a multiple of 14 (default 518): square size x size, or with --keep-aspect the short side "
             "(the official sizing)")
#: Checkpoint entries this network does not have (``mask_token`` is only used in training).
DROPPED_KEYS = ("pretrained.mask_token",)


# --- position embedding -------------------------------------------------------------------


def _cubic(x: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel with PyTorch's ``a = -0.75``."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


@functools.lru_cache(maxsize=64)
def pos_embed_matrix(size: int, source: int = POS_GRID, offset: float = POS_OFFSET) -> np.ndarray:
    """``[size, source]`` float64 weights of the official 1-D bicubic resampling of the grid.

    The official call is ``F.interpolate(grid, scale_factor=(g + offset) / source, mode="bicubic",
    align_corners=False)``: a scale factor (not a size) maps output ``i`` to source
    ``(i + 0.5) * source / (g + offset) - 0.5``; 4 taps, indices clamped to the grid.
    """
    src = (np.arange(size) + 0.5) * (source / (size + offset)) - 0.5
    first = np.floor(src)
    frac = src - first
    matrix = np.zeros((size, source))
    rows = np.arange(size)
    for tap in range(-1, 3):
        np.add.at(matrix, (rows, np.clip(first + tap, 0, source - 1).astype(int)), _cubic(frac - tap))
    matrix.flags.writeable = False
    return matrix


def _hw(x: torch.Tensor) -> tuple[int, int]:
    """Height and width as ints: a traced or exported graph gets them as constants (one per size)."""
    return int(x.shape[-2]), int(x.shape[-1])


# --- encoder ------------------------------------------------------------------------------


class DinoV2Encoder(nn.Module):
    """timm's ``vit_small_patch14_dinov2`` parts, run as the official ``get_intermediate_layers``.

    ``forward`` returns the patch tokens of ``TAPPED_BLOCKS``, each through the final LayerNorm,
    as ``(B, 384, H/14, W/14)`` maps (the class token is dropped).
    """

    def __init__(self) -> None:
        super().__init__()
        import timm  # here, not at the top: see the module's docstring

        vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, dynamic_img_size=True, num_classes=0)
        self.cls_token = vit.cls_token
        self.pos_embed = vit.pos_embed
        self.patch_embed = vit.patch_embed
        self.blocks = vit.blocks
        self.norm = vit.norm

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """``(1, 1 + grid_h * grid_w, 384)``: the class position, then the grid resampled row-major.

        The checkpoint's 37x37 grid is used as is only for a 37x37 input; otherwise both axes are
        resampled (even one that already has 37 patches), as the official code does.
        """
        if (grid_h, grid_w) == (POS_GRID, POS_GRID):
            return self.pos_embed
        cls_pos, grid = self.pos_embed[:, :1], self.pos_embed[0, 1:].reshape(POS_GRID, POS_GRID, -1)
        rows = torch.tensor(pos_embed_matrix(grid_h), dtype=grid.dtype)
        cols = torch.tensor(pos_embed_matrix(grid_w), dtype=grid.dtype)
        resampled = torch.einsum("ys,stc,xt->yxc", rows, grid, cols)
        return torch.cat([cls_pos, resampled.reshape(1, grid_h * grid_w, -1)], dim=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        batch = x.shape[0]
        height, width = _hw(x)
        grid_h, grid_w = height // PATCH, width // PATCH
        patches = self.patch_embed(x).reshape(batch, grid_h * grid_w, -1)  # NHWC -> tokens, row-major
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), patches], dim=1)
        tokens = tokens + self.position_embedding(grid_h, grid_w)
        taps = []
        for index, block in enumerate(self.blocks[: TAPPED_BLOCKS[-1] + 1]):
            tokens = block(tokens)
            if index in TAPPED_BLOCKS:
                patch_tokens = self.norm(tokens)[:, 1:]
                taps.append(patch_tokens.transpose(1, 2).reshape(batch, -1, grid_h, grid_w))
        return taps


# --- DPT head -----------------------------------------------------------------------------


class ResidualConvUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))``; the input is never modified in place."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """The official ``FeatureFusionBlock``: add the refined skip, refine, resize, 1x1 conv.

    The resize is bilinear with ``align_corners=True`` to the size of the next tap (not x2),
    which is what makes odd grids work. ``resConfUnit1`` of ``refinenet4`` (which has no skip)
    is in the checkpoint but never runs, as in the official forward. ``conv_first`` runs the 1x1
    ``out_conv`` before the resize: the same result (both are linear, and each output pixel's
    interpolation weights sum to one) on fewer pixels; the official order is the default.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_first = False
        self.out_conv = nn.Conv2d(channels, channels, 1)
        self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if self.conv_first:
            return F.interpolate(self.out_conv(x), size=size, mode="bilinear", align_corners=True)
        return self.out_conv(F.interpolate(x, size=size, mode="bilinear", align_corners=True))


class _Scratch(nn.Module):
    """The official ``depth_head.scratch``: per-tap 3x3 convs, four fusion blocks, output convs."""

    def __init__(self) -> None:
        super().__init__()
        for index, channels in enumerate(TAP_CHANNELS, start=1):
            self.add_module(f"layer{index}_rn", nn.Conv2d(channels, FEATURES, 3, padding=1, bias=False))
        for index in range(1, 5):
            self.add_module(f"refinenet{index}", FusionBlock(FEATURES))
        self.output_conv1 = nn.Conv2d(FEATURES, FEATURES // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(FEATURES // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
        )


class DptHead(nn.Module):
    """The official ``DPTHead`` for vits (no class-token readout, no BatchNorm)."""

    def __init__(self) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(EMBED_DIM, channels, 1) for channels in TAP_CHANNELS)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(TAP_CHANNELS[0], TAP_CHANNELS[0], 4, stride=4),  # 4x the grid
            nn.ConvTranspose2d(TAP_CHANNELS[1], TAP_CHANNELS[1], 2, stride=2),  # 2x
            nn.Identity(),
            nn.Conv2d(TAP_CHANNELS[3], TAP_CHANNELS[3], 3, stride=2, padding=1),  # ceil(grid / 2)
        ])
        self.scratch = _Scratch()

    def forward(self, taps: list[torch.Tensor], out_hw: tuple[int, int]) -> torch.Tensor:
        s = self.scratch
        l1, l2, l3, l4 = (
            rn(resize(project(tap)))
            for tap, project, resize, rn in zip(
                taps, self.projects, self.resize_layers, (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn)
            )
        )
        path = s.refinenet4(l4, None, _hw(l3))
        path = s.refinenet3(path, l3, _hw(l2))
        path = s.refinenet2(path, l2, _hw(l1))
        path = s.refinenet1(path, l1, (2 * _hw(l1)[0], 2 * _hw(l1)[1]))
        out = F.interpolate(s.output_conv1(path), size=out_hw, mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingV2Small(nn.Module):
    """Depth Anything V2 Small: normalised ``(N, 3, H, W)`` -> relative inverse depth ``(N, H, W)``.

    H and W must be multiples of 14. The output is >= 0; larger is nearer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = DinoV2Encoder()
        self.depth_head = DptHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = _hw(x)
        if height % PATCH or width % PATCH:
            raise ValueError(f"input height and width must be multiples of {PATCH}, got {(height, width)}")
        depth = self.depth_head(self.pretrained(x), (height, width))
        return F.relu(depth).squeeze(1)


def build_network() -> DepthAnythingV2Small:
    """An uninitialised network in eval mode, fp32, on the CPU (no download, no weights)."""
    return DepthAnythingV2Small().eval()


class PrescaledAttention(nn.Module):
    """timm's attention with its ``1 / sqrt(64)`` score scale folded into the query rows of
    ``qkv``: the scale is a power of two, so the product is exact, and the backends' fused
    attention then runs without its two scaling multiplies."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.num_heads = attention.num_heads
        self.qkv, self.proj = attention.qkv, attention.proj
        channels = self.qkv.in_features
        with torch.no_grad():
            self.qkv.weight[:channels].mul_(attention.scale)
            self.qkv.bias[:channels].mul_(attention.scale)

    def forward(self, x: torch.Tensor, attn_mask: None = None, is_causal: bool = False) -> torch.Tensor:
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, channels))


class DoubledGelu(nn.Module):
    """``2 * gelu(x) = x * (1 + erf(x / sqrt(2)))``, written out; the half goes into the next
    linear layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + torch.erf(x / math.sqrt(2)))


def runtime_form(model: DepthAnythingV2Small) -> DepthAnythingV2Small:
    """What the torch backend runs (``model`` is a copy, changed in place), exact rewrites of the
    official order:

    - each block's LayerScale folded into the linear layer before it (``attn.proj``, ``mlp.fc2``);
    - the attention's score scale folded into the queries (:class:`PrescaledAttention`);
    - the fusion blocks' 1x1 conv before their resize (:class:`FusionBlock`).
    """
    with torch.no_grad():
        for block in model.pretrained.blocks:
            for scale, linear in ((block.ls1, block.attn.proj), (block.ls2, block.mlp.fc2)):
                linear.weight.mul_(scale.gamma[:, None])
                linear.bias.mul_(scale.gamma)
            block.ls1 = block.ls2 = nn.Identity()
            block.attn = PrescaledAttention(block.attn)
    for index in range(1, 5):
        getattr(model.depth_head.scratch, f"refinenet{index}").conv_first = True
    return model


def export_form(model: DepthAnythingV2Small, height: int, width: int) -> DepthAnythingV2Small:
    """What ONNX Runtime and OpenVINO run (any input size): the runtime form with each MLP's
    GELU doubled and its ``fc2`` weights halved (a power of two: exact), :class:`DoubledGelu`.

    OpenVINO fuses a recognised GELU into the linear layer before it and then runs that layer
    with a slower kernel (12.4 against 9.7 ms per block at 518, two threads); the written-out
    form keeps the fast one. In torch the fused GELU is the faster, so the torch backend keeps it.
    """
    fast = runtime_form(model)
    with torch.no_grad():
        for block in fast.pretrained.blocks:
            block.mlp.act = DoubledGelu()
            block.mlp.fc2.weight.mul_(0.5)
    return fast


def parameter_count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


# --- weights ------------------------------------------------------------------------------


def adapt_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official checkpoint's entries under this network's names: ``pretrained.mask_token``
    (training only; timm has none) is dropped, every other key is already this network's."""
    return {key: value for key, value in state.items() if key not in DROPPED_KEYS}


def _first(keys: set[str], limit: int = 2) -> str:
    listed = sorted(keys)
    return ", ".join(listed[:limit]) + (", ..." if len(listed) > limit else "")


def load_official_state(network: nn.Module, state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> None:
    """:func:`adapt_state_dict`, then a strict load; a checkpoint of another model (or a damaged
    one) is one :class:`WeightsError` line naming its missing, unexpected or misshapen entries."""
    adapted = adapt_state_dict(state)
    expected = network.state_dict()
    missing, unexpected = set(expected) - set(adapted), set(adapted) - set(expected)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
    for key in sorted(set(expected) & set(adapted)):
        if tuple(adapted[key].shape) != tuple(expected[key].shape):
            problems.append(f"{key} has shape {tuple(adapted[key].shape)}, expected {tuple(expected[key].shape)}")
            break
    if problems:
        raise WeightsError(f"{source} is not a {NAME} checkpoint: {'; '.join(problems)}")
    network.load_state_dict(adapted, strict=True)


# --- pre- and postprocessing --------------------------------------------------------------


def _multiple_at_least(x: float, minimum: int) -> int:
    """The official ``constrain_to_multiple_of`` for ``lower_bound``: round to a multiple of 14
    (half to even), or ceil when rounding falls below ``minimum``."""
    snapped = int(np.round(x / PATCH) * PATCH)
    return snapped if snapped >= minimum else int(math.ceil(x / PATCH) * PATCH)


def input_size(frame_h: int, frame_w: int, size: int = DEFAULT_SIZE, keep_aspect: bool = False) -> tuple[int, int]:
    """The network input ``(h, w)`` for a frame: ``(size, size)``, or with ``keep_aspect`` the
    official sizing (both sides at least ``size``: the shorter one becomes ``size``)."""
    if size <= 0 or size % PATCH:
        raise LivedepthError(f"{NAME} needs a size that is a positive multiple of {PATCH}, got {size}")
    if not keep_aspect:
        return size, size
    scale = max(size / frame_h, size / frame_w)
    return _multiple_at_least(scale * frame_h, size), _multiple_at_least(scale * frame_w, size)


def preprocess(frame_bgr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """BGR uint8 HxWx3 -> normalised float32 ``(1, 3, h, w)``, bit for bit the official
    ``image2tensor``: RGB / 255 in float64, cv2 bicubic resize, ImageNet normalisation (on
    channel planes: the same operations per value, faster than across the pixels' channels)."""
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB) / 255.0
    height, width = out_hw
    planes = np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1))
    planes -= MEAN
    planes /= STD
    return planes.astype(np.float32)[None]


def postprocess(depth: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Network output ``(h, w)`` -> float32 ``(H, W)``: bilinear with ``align_corners=True``,
    as the official ``infer_image`` (not cv2's ``INTER_LINEAR``, which is ``align_corners=False``)."""
    tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    with torch.inference_mode():
        return F.interpolate(tensor, size=frame_hw, mode="bilinear", align_corners=True)[0, 0].numpy()


SPEC = ModelSpec(
    name=NAME,
    build_network=build_network,
    weights=WEIGHTS,
    size_multiple=PATCH,
    default_size=DEFAULT_SIZE,
    size_rule=SIZE_RULE,
    input_size=input_size,
    preprocess=preprocess,
    postprocess=postprocess,
    adapt_state_dict=adapt_state_dict,
    runtime_form=runtime_form,
    export_form=export_form,
    parameters="25M",
    license="Apache-2.0",
    description="Depth Anything V2 Small (DINOv2 ViT-S/14 + DPT): finer relative depth, about 6x the compute",
)
