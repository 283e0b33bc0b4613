"""Backbones that parameterise the zoo's distributions.

A distribution takes its network as an argument, so the architecture is a preset, not part of
the model. MLPs work on any modality; the convolutional backbones cover 8x8, 28x28, 32x32 and
64x64 images (the JMVAE CelebA and dSprites papers use the 64x64 one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from pixyz_zoo.checks import check_count
from pixyz_zoo.modalities import Modality

CONV_SIZES = (8, 28, 32, 64)


def check_widths(hidden: Sequence[int], what: str = "hidden") -> tuple[int, ...]:
    """Hidden-layer widths as a tuple of integers >= 1; a width alone (``hidden=32``) is refused,
    naming the list to write."""
    if isinstance(hidden, int | str) or not isinstance(hidden, Sequence):
        raise TypeError(
            f"{what} is a list of hidden-layer widths, e.g. [{hidden!r}] for one layer; got {hidden!r}"
        )
    return tuple(check_count(width, f"each width of {what}") for width in hidden)


class MLP(nn.Module):
    """Flatten the input(s), concatenate them, then ``Linear -> act`` per hidden layer -> Linear."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (512, 512),
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        in_dim, out_dim = check_count(in_dim, "in_dim"), check_count(out_dim, "out_dim")
        layers: list[nn.Module] = []
        last = in_dim
        for width in check_widths(hidden):
            layers += [nn.Linear(last, width), activation()]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        flat = [t.flatten(1) for t in inputs]
        h = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
        return self.net(h)


def _conv_channels(image_shape: Sequence[int]) -> list[int]:
    """Channels of the strided conv stack for a square ``(C, size, size)`` image."""
    _, size, width = image_shape
    if size != width:
        raise ValueError(
            f"convolutional presets take square images, got {size}x{width}. Use the MLP architecture "
            "(--arch mlp) or pass your own network"
        )
    if size == 8:
        return [32, 64]  # 8 -> 4 -> 2
    if size in (28, 32):
        return [32, 64, 128]  # 28 -> 14 -> 7 -> 4, 32 -> 16 -> 8 -> 4
    if size == 64:
        return [32, 32, 64, 64]  # 64 -> 32 -> 16 -> 8 -> 4
    raise ValueError(
        f"no convolutional preset for {size}x{size} images; presets exist for {CONV_SIZES}. "
        "Use the MLP architecture (--arch mlp) or pass your own network"
    )


class ConvEncoderNet(nn.Module):
    """Strided 4x4 convolutions (stride 2) then a linear layer to ``out_dim`` features."""

    def __init__(self, image_shape: Sequence[int], out_dim: int, hidden: int = 256) -> None:
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = []
        last = c
        for ch in _conv_channels(image_shape):
            layers += [nn.Conv2d(last, ch, 4, stride=2, padding=1 if h != 28 or ch != 128 else 2)]
            layers.append(nn.ReLU())
            last = ch
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, c, h, w)).numel()
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )
        self.image_shape = tuple(image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


class ConvDecoderNet(nn.Module):
    """Linear layers to a small feature map, then 4x4 transposed convolutions to the image."""

    def __init__(self, in_dim: int, image_shape: Sequence[int], hidden: int = 256) -> None:
        super().__init__()
        c, h, w = image_shape
        channels = _conv_channels(image_shape)[::-1]
        start = 2 if h == 8 else 4
        self.start_shape = (channels[0], start, start)
        self.fc = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(self.start_shape)), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for i, ch in enumerate(channels):
            out = channels[i + 1] if i + 1 < len(channels) else c
            # 4 -> 7 for 28x28 images (the others double exactly)
            odd = h == 28 and i == 0
            layers.append(
                nn.ConvTranspose2d(ch, out, 4, stride=2, padding=2 if odd else 1, output_padding=int(odd))
            )
            if i + 1 < len(channels):
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)
        self.image_shape = tuple(image_shape)
        with torch.no_grad():
            got = self.forward(torch.zeros(1, in_dim)).shape[1:]
        if tuple(got) != self.image_shape:  # pragma: no cover - guards the presets above
            raise RuntimeError(f"decoder preset produces {tuple(got)}, expected {self.image_shape}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).view(-1, *self.start_shape))


class MultiInputNet(nn.Module):
    """One body per input modality, features concatenated, then a shared head: ``q(z|x,w)``."""

    def __init__(self, bodies: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.bodies = nn.ModuleList(bodies)
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([body(x) for body, x in zip(self.bodies, inputs, strict=True)], dim=1))


def encoder_network(
    modalities: Modality | Sequence[Modality],
    out_dim: int,
    arch: str = "mlp",
    hidden: Sequence[int] = (512, 512),
) -> nn.Module:
    """A network from the given modalities (one, or several in the encoder's ``cond_var`` order) to
    ``out_dim`` features (``2 * z_dim`` for a Gaussian).

    ``arch="mlp"``: an MLP for one modality; for several, one ``hidden`` ReLU MLP body per
    modality, their last features concatenated, then a linear head: the JMVAE paper's MNIST
    encoder ``(D512R-D512R, D512R-D512R)`` followed by ``f_mu``, ``f_sigma`` (sec. 4.2.1).
    ``arch="conv"``: a conv body per image modality, an MLP body per other one, then an MLP head.
    """
    if isinstance(modalities, Modality):
        modalities = [modalities]
    if isinstance(modalities, Mapping):
        raise TypeError(
            "encoder_network takes the declarations themselves, in the encoder's cond_var order: pass "
            "list(modalities.values()) (or [modalities[name] for name in cond_var]), not the dict"
        )
    hidden = check_widths(hidden)
    if arch == "mlp":
        if len(modalities) == 1 or not hidden:
            return MLP(sum(m.dim for m in modalities), out_dim, hidden)
        width = hidden[-1]
        bodies = [nn.Sequential(MLP(m.dim, width, hidden[:-1]), nn.ReLU()) for m in modalities]
        return MultiInputNet(bodies, nn.Linear(width * len(modalities), out_dim))
    if arch == "conv":
        if len(modalities) == 1 and modalities[0].is_image:
            return ConvEncoderNet(modalities[0].shape, out_dim)
        width = hidden[-1] if hidden else 256
        bodies = [
            ConvEncoderNet(m.shape, width) if m.is_image else MLP(m.dim, width, hidden[:1])
            for m in modalities
        ]
        return MultiInputNet(bodies, MLP(width * len(modalities), out_dim, hidden[1:]))
    if arch == "celeba":  # the JMVAE paper's CelebA preset (sec. 4.2.2); ``hidden`` is unused
        from pixyz_zoo.distributions.celeba_networks import celeba_encoder_network

        return celeba_encoder_network(modalities, out_dim)
    raise ValueError(f"unknown architecture {arch!r}; choose 'mlp', 'conv' or 'celeba'")


def decoder_network(
    modality: Modality,
    in_dim: int,
    arch: str = "mlp",
    hidden: Sequence[int] = (512, 512),
    out_channels: int = 1,
) -> nn.Module:
    """A network from ``in_dim`` latent features to ``out_channels`` x the modality's shape."""
    hidden = check_widths(hidden)
    if arch == "celeba":  # the JMVAE paper's CelebA preset: tanh mean, unit variance; no ``hidden``
        from pixyz_zoo.distributions.celeba_networks import celeba_decoder_network

        return celeba_decoder_network(modality, in_dim, out_channels)
    shape = modality.shape
    if out_channels != 1:
        shape = (shape[0] * out_channels, *shape[1:])
    if arch == "conv" and modality.is_image:
        return ConvDecoderNet(in_dim, shape)
    if arch not in ("mlp", "conv"):
        raise ValueError(f"unknown architecture {arch!r}; choose 'mlp', 'conv' or 'celeba'")
    return nn.Sequential(MLP(in_dim, math.prod(shape), hidden), nn.Unflatten(1, shape))
