"""MiDaS v2.1 small (``MidasNet_small``) on timm's ``tf_efficientnet_lite3``.

The module tree reproduces the official checkpoint's key layout exactly, so the
official ``midas_v21_small_256.pt`` loads unchanged with ``strict=True``.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MidasSmall", "build_model", "load_model"]

#: Channels of the four backbone taps (strides 4, 8, 16, 32).
BACKBONE_CHANNELS = (32, 48, 136, 384)
#: Channels of the decoder's projected taps (``scratch.layerK_rn``), ``expand=True``.
DECODER_CHANNELS = (64, 128, 256, 512)


class _Backbone(nn.Module):
    """timm's tf_efficientnet_lite3 regrouped into the official ``pretrained.layerK``."""

    def __init__(self) -> None:
        super().__init__()
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
    of the pixels. ``resConfUnit1`` of a single-input block is kept only so that the
    official checkpoint loads; it is never run, as in the official forward.
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(channels, out_channels, 1, bias=True)
        self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.out_conv(self.resConfUnit2(x))
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class _Upsample2x(nn.Module):
    """Bilinear x2 with ``align_corners=False`` (the head's ``Interpolate``, no params)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class _Decoder(nn.Module):
    """The official ``scratch`` module: projections, four fusion blocks and the head."""

    def __init__(self) -> None:
        super().__init__()
        for k, (cin, cout) in enumerate(zip(BACKBONE_CHANNELS, DECODER_CHANNELS), start=1):
            self.add_module(f"layer{k}_rn", nn.Conv2d(cin, cout, 3, padding=1, bias=False))
        self.refinenet4 = FeatureFusionBlock(512, 256)
        self.refinenet3 = FeatureFusionBlock(256, 128)
        self.refinenet2 = FeatureFusionBlock(128, 64)
        self.refinenet1 = FeatureFusionBlock(64, 64)
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

    H and W must be multiples of 32.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = _Backbone()
        self.scratch = _Decoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"input height and width must be multiples of 32, got {tuple(x.shape[-2:])}")
        return self.scratch(*self.pretrained(x)).squeeze(1)


def build_model() -> MidasSmall:
    """An uninitialised MiDaS small in eval mode (no download, no weights)."""
    return MidasSmall().eval()


def load_model(path: str | Path) -> MidasSmall:
    """Load an official-format checkpoint (a plain ``torch.save``d state dict) in eval mode."""
    from livedepth.weights import load_state_dict_into

    model = build_model()
    load_state_dict_into(model, Path(path))
    return model
