"""The JMVAE paper's CelebA architecture (Suzuki & Matsuo, sec. 4.2.2) as network presets.

Notation of the paper: ``CkR`` a 4x4 convolution with k channels and stride 2 then ReLU, ``CkBR``
the same with batch normalisation before the ReLU, ``DCkBR`` / ``DCk`` the transposed
convolutions (4x4, stride 2) with / without BN-ReLU, ``DkR`` / ``DkBR`` / ``Dk`` a k-unit linear
layer with ReLU / BN-ReLU / nothing, ``F`` flattening, ``(I, J)`` the concatenation of two
networks' outputs.

- joint encoder ``q(z|x,w)``: ``f_MLP = (C64R-C128BR-C256BR-C256BR-F, D512R-D512BR)-D1024R``,
  ``f_mu`` and ``f_sigma`` ``D128`` each (:func:`celeba_joint_encoder_net`);
- JMVAE-kl's unimodal encoders: ``q(z|x)``: ``C64R-C128BR-C256BR-C256BR-F-D1024R`` and
  ``q(z|w)``: ``D512R-D512BR-D1024R``, then ``D128`` each (:func:`celeba_image_encoder_net`,
  :func:`celeba_attribute_encoder_net`);
- decoders, Gaussian with mean ``Tanh(f_mu(f_MLP(z)))`` and every variance fixed to 1:
  ``p(x|z)``: ``D4096R-DC256BR-DC128BR-DC64BR`` then ``DC3``
  (:func:`celeba_image_decoder_net`), ``p(w|z)``: ``D4096R-D512BR`` then ``D40``
  (:func:`celeba_attribute_decoder_net`);
- JMVAE-GAN's discriminator (sec. 4.6.3): ``C64R-C128BR-C256BR-C256BR-F-D1024R-D1S``
  (:class:`DiscriminatorNet`, outputting the logit; smaller images get the same pattern, shorter).

Zoo conventions: an encoder network outputs ``2 * z_dim`` features (the two ``D{z_dim}`` heads
side by side: mean, then the pre-softplus scale of :class:`GaussianEncoder`); a decoder network
ends with the tanh, so ``decoder_for(modality, network)`` (a :class:`GaussianDecoder` with its
default fixed scale 1) is exactly the paper's decoder. The ``D4096`` output is reshaped to
``4096 / s^2`` channels of ``s x s`` with ``s = side / 16`` (1024 x 2 x 2 for 32x32 images, so
the four stride-2 transposed convolutions end at 32x32; 256 x 4 x 4 for 64x64 images).

``encoder_network(..., arch="celeba")`` and ``decoder_network(..., arch="celeba")`` in
:mod:`pixyz_zoo.distributions.networks` dispatch to :func:`celeba_encoder_network` and
:func:`celeba_decoder_network`, so any model built on those helpers takes this preset.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pixyz_zoo.distributions.networks import MultiInputNet
from pixyz_zoo.modalities import Modality

Z_DIM = 128
IMAGE_SHAPE = (3, 32, 32)
ATTRIBUTES = 40
CONV_CHANNELS = (64, 128, 256, 256)  # C64R-C128BR-C256BR-C256BR
DECONV_CHANNELS = (256, 128, 64)  # DC256BR-DC128BR-DC64BR, then DC<channels>


def _conv(in_ch: int, out_ch: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return [*layers, nn.ReLU()]


def _deconv(in_ch: int, out_ch: int, batch_norm_relu: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1)]
    if batch_norm_relu:
        layers += [nn.BatchNorm2d(out_ch), nn.ReLU()]
    return layers


def _dense(in_dim: int, out_dim: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_dim))
    return [*layers, nn.ReLU()]


def _check_image(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] % 16 or shape[1] < 16:
        raise ValueError(
            f"the CelebA preset takes square images whose side is a multiple of 16 (32x32 in the "
            f"paper), got shape {tuple(shape)}; use arch='conv' or 'mlp' for other sizes"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


class CelebAImageBody(nn.Sequential):
    """``C64R-C128BR-C256BR-C256BR-F``; ``out_features`` is the flattened size."""

    def __init__(self, image_shape: Sequence[int] = IMAGE_SHAPE) -> None:
        c, h, _ = _check_image(image_shape)
        layers: list[nn.Module] = []
        last = c
        for i, ch in enumerate(CONV_CHANNELS):
            layers += _conv(last, ch, batch_norm=i > 0)
            last = ch
        super().__init__(*layers, nn.Flatten())
        self.out_features = last * (h // 16) ** 2


def celeba_attribute_body(attribute_dim: int = ATTRIBUTES) -> nn.Sequential:
    """``D512R-D512BR`` on the flattened attribute vector."""
    return nn.Sequential(nn.Flatten(), *_dense(attribute_dim, 512, False), *_dense(512, 512, True))


def celeba_joint_encoder_net(
    z_dim: int = Z_DIM,
    image_shape: Sequence[int] = IMAGE_SHAPE,
    attribute_dim: int = ATTRIBUTES,
    image_first: bool = True,
) -> MultiInputNet:
    """``q(z|x,w)``: ``(C64R-C128BR-C256BR-C256BR-F, D512R-D512BR)-D1024R`` then ``2 x D{z_dim}``.

    Its ``forward(x, w)`` takes the image first (``forward(w, x)`` with ``image_first=False``).
    """
    image, attribute = CelebAImageBody(image_shape), celeba_attribute_body(attribute_dim)
    head = nn.Sequential(*_dense(image.out_features + 512, 1024, False), nn.Linear(1024, 2 * z_dim))
    return MultiInputNet([image, attribute] if image_first else [attribute, image], head)


def celeba_image_encoder_net(z_dim: int = Z_DIM, image_shape: Sequence[int] = IMAGE_SHAPE) -> nn.Sequential:
    """JMVAE-kl's ``q(z|x)``: ``C64R-C128BR-C256BR-C256BR-F-D1024R`` then ``2 x D{z_dim}``."""
    body = CelebAImageBody(image_shape)
    return nn.Sequential(body, *_dense(body.out_features, 1024, False), nn.Linear(1024, 2 * z_dim))


def celeba_attribute_encoder_net(z_dim: int = Z_DIM, attribute_dim: int = ATTRIBUTES) -> nn.Sequential:
    """JMVAE-kl's ``q(z|w)``: ``D512R-D512BR-D1024R`` then ``2 x D{z_dim}``."""
    return nn.Sequential(
        celeba_attribute_body(attribute_dim), *_dense(512, 1024, False), nn.Linear(1024, 2 * z_dim)
    )


class CelebAImageDecoderNet(nn.Module):
    """``p(x|z)``'s mean: ``D4096R-DC256BR-DC128BR-DC64BR-DC<c>`` then ``Tanh`` (optional)."""

    def __init__(
        self, z_dim: int = Z_DIM, image_shape: Sequence[int] = IMAGE_SHAPE, tanh: bool = True
    ) -> None:
        super().__init__()
        c, h, _ = _check_image(image_shape)
        start = h // 16
        if 4096 % (start * start):
            raise ValueError(f"4096 features cannot be reshaped into {start}x{start} maps")
        self.start_shape = (4096 // (start * start), start, start)
        self.fc = nn.Sequential(*_dense(z_dim, 4096, False))
        layers: list[nn.Module] = []
        last = self.start_shape[0]
        for ch in DECONV_CHANNELS:
            layers += _deconv(last, ch, batch_norm_relu=True)
            last = ch
        layers += _deconv(last, c, batch_norm_relu=False)
        if tanh:
            layers.append(nn.Tanh())
        self.deconv = nn.Sequential(*layers)
        self.image_shape = (c, h, h)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).view(-1, *self.start_shape))


def celeba_image_decoder_net(
    z_dim: int = Z_DIM, image_shape: Sequence[int] = IMAGE_SHAPE, tanh: bool = True
) -> CelebAImageDecoderNet:
    """``p(x|z)``'s mean network (see :class:`CelebAImageDecoderNet`)."""
    return CelebAImageDecoderNet(z_dim, image_shape, tanh)


def celeba_attribute_decoder_net(
    z_dim: int = Z_DIM, attribute_dim: int = ATTRIBUTES, tanh: bool = True
) -> nn.Sequential:
    """``p(w|z)``'s mean network: ``D4096R-D512BR-D{attribute_dim}`` then ``Tanh`` (optional)."""
    layers = [*_dense(z_dim, 4096, False), *_dense(4096, 512, True), nn.Linear(512, attribute_dim)]
    return nn.Sequential(*layers, *([nn.Tanh()] if tanh else []))


def celeba_encoder_network(modalities: Sequence[Modality], out_dim: int) -> nn.Module:
    """``encoder_network(..., arch="celeba")``: the preset for one or more modalities.

    One image: the ``q(z|x)`` network; one vector: the ``q(z|w)`` network; several: a
    ``C64R-...-F`` body per image, a ``D512R-D512BR`` body per vector, concatenated, then
    ``D1024R`` and the linear head (the joint ``q(z|x,w)`` for an image and a vector).
    """
    if out_dim % 2:
        raise ValueError(f"a Gaussian encoder outputs 2 * z_dim features, got out_dim={out_dim}")
    z_dim = out_dim // 2
    if len(modalities) == 1:
        (m,) = modalities
        if m.is_image:
            return celeba_image_encoder_net(z_dim, m.shape)
        return celeba_attribute_encoder_net(z_dim, m.dim)
    bodies: list[nn.Module] = []
    width = 0
    for m in modalities:
        if m.is_image:
            body = CelebAImageBody(m.shape)
            width += body.out_features
        else:
            body = celeba_attribute_body(m.dim)
            width += 512
        bodies.append(body)
    return MultiInputNet(bodies, nn.Sequential(*_dense(width, 1024, False), nn.Linear(1024, out_dim)))


def celeba_decoder_network(modality: Modality, in_dim: int, out_channels: int = 1) -> nn.Module:
    """``decoder_network(..., arch="celeba")``: the paper's decoder for ``modality``.

    Gaussian and Laplace modalities get the tanh mean (data scaled to [-1, 1], as CelebA here);
    Bernoulli and categorical ones output logits (no tanh). The paper fixes the variance to 1,
    so a per-example scale (``out_channels=2``) is refused.
    """
    if out_channels != 1:
        raise ValueError(
            "the CelebA preset has a fixed unit variance (sec. 4.2.2): use decoder_scale=None or a "
            "number, not 'per-example'"
        )
    tanh = modality.likelihood in ("gaussian", "laplace")
    if modality.is_image:
        return celeba_image_decoder_net(in_dim, modality.shape, tanh)
    net = celeba_attribute_decoder_net(in_dim, modality.dim, tanh)
    return nn.Sequential(*net, nn.Unflatten(1, modality.shape)) if len(modality.shape) > 1 else net


# ---------------------------------------------------------------------- JMVAE-GAN's discriminator
DISCRIMINATOR_HIDDEN = 1024  # D1024R


class DiscriminatorNet(nn.Module):
    """The JMVAE paper's GAN discriminator ``C64R-C128BR-C256BR-C256BR-F-D1024R-D1S`` (sec. 4.6.3).

    ``forward(x)`` returns one logit per image, shape ``(N,)``: the paper's ``D1S`` is ``D1`` then
    a sigmoid, and the sigmoid belongs to the loss (binary cross-entropy with logits).
    ``features(x)`` is the flattened output of the last convolutional block (``C256BR``), the
    layer ``Dis_l`` whose features VAE-GAN's feature-matching reconstruction compares (Larsen et
    al. 2016, eq. 8).

    32x32 and 64x64 images (square, side a multiple of 16) with the default widths get exactly the
    paper's network (its body is :class:`CelebAImageBody`). Other sizes get the same pattern with
    as many of the stride-2 ``4x4`` convolutions as keep both sides of the feature map at 2 pixels
    or more (8x8 digits: ``C64R-C128BR``, 4x4 -> 2x2; 28x28 MNIST: ``C64R-C128BR-C256BR``, down to
    3x3); images under 4x4 pixels are refused. ``channels`` and ``hidden`` change the widths (the
    defaults are the paper's).
    """

    def __init__(
        self,
        image_shape: Sequence[int] = IMAGE_SHAPE,
        channels: Sequence[int] = CONV_CHANNELS,
        hidden: int = DISCRIMINATOR_HIDDEN,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(
                f"the discriminator takes images (channels, height, width), got {tuple(image_shape)}"
            )
        c, h, w = (int(s) for s in image_shape)
        channels = [int(ch) for ch in channels]
        if not channels or min(channels) < 1 or hidden < 1:
            raise ValueError(f"the discriminator needs widths >= 1, got channels={channels}, hidden={hidden}")
        paper = h == w and h % 16 == 0 and h >= 16 and channels == list(CONV_CHANNELS)
        if paper:
            self.body: nn.Sequential = CelebAImageBody(image_shape)
            out_features = self.body.out_features
        else:
            layers: list[nn.Module] = []
            last = c
            for i, ch in enumerate(channels):
                if min(h, w) // 2 < 2:
                    break
                layers += _conv(last, ch, batch_norm=i > 0)
                h, w, last = h // 2, w // 2, ch
            if not layers:
                raise ValueError(
                    f"the discriminator's stride-2 convolutions need images of at least 4x4 pixels, got "
                    f"shape {tuple(image_shape)}; use a dataset with larger images"
                )
            self.body = nn.Sequential(*layers, nn.Flatten())
            out_features = last * h * w
        self.head = nn.Sequential(*_dense(out_features, hidden, False), nn.Linear(hidden, 1))
        convs = [m.out_channels for m in self.body if isinstance(m, nn.Conv2d)]
        self.spec = "-".join(
            [f"C{ch}{'BR' if i else 'R'}" for i, ch in enumerate(convs)] + ["F", f"D{hidden}R", "D1S"]
        )
        self.image_shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
        self.feature_dim = out_features
        self.paper_network = paper

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``Dis_l(x)``: the last convolutional block's output, flattened, shape ``(N, feature_dim)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logit of "real" per image, shape ``(N,)`` (``sigmoid`` of it is the paper's ``D1S``)."""
        return self.head(self.body(x)).squeeze(-1)
