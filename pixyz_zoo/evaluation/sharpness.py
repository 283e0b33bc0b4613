"""Image sharpness: the variance of the Laplacian (Pech-Pacheco et al. 2000), one value per image.

A blurred image has weaker second derivatives, so its Laplacian varies less. The JMVAE paper
combines JMVAE-kl with a GAN "to generate sharp images" (sec. 4.6.3); this score measures it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LAPLACIAN", "laplacian_variance"]

#: The 4-neighbour discrete Laplacian.
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Per image, the variance of the 3x3 Laplacian of its luminance, shape ``(N,)``.

    ``images``: ``(N, C, H, W)`` in any range (the score scales with the square of the range:
    compare images of the same range). The luminance is the plain mean over the channels (not
    the ITU-R BT.601 weights, so one- and three-channel images are treated alike). The
    Laplacian is taken on the valid region (no padding: ``(H-2) x (W-2)`` values) and the
    variance is the population variance (divided by the number of values).
    """
    if not torch.is_tensor(images) or images.dim() != 4:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"laplacian_variance takes images of shape (N, C, H, W), got {shape}")
    if images.shape[2] < 3 or images.shape[3] < 3:
        raise ValueError(f"the 3x3 Laplacian needs images of at least 3x3 pixels, got {tuple(images.shape)}")
    luminance = images.detach().float().mean(1, keepdim=True)
    response = F.conv2d(luminance, LAPLACIAN.to(luminance.device).view(1, 1, 3, 3))
    return response.flatten(1).var(1, unbiased=False)
