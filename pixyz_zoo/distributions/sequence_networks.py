"""LSTM networks for sequence modalities of shape ``(T, d)`` (time steps, features per step).

- :class:`SequenceEncoderNet`: one LSTM over the time steps of one or more modalities, their
  features concatenated at every step; its last hidden state goes through a linear layer to the
  code (MFM's per-modality encoders, and its multimodal encoder for ``z_y`` over all modalities).
- :class:`SequenceDecoderNet`: a code or feature vector fed at every one of ``T`` steps of an
  LSTM, a linear layer per step to the modality's features (MFM's decoders ``F_m(f_y, f_a^m)``).

Both take batches ``(batch, T, d)``; the sequences of one encoder must have the same length
(:func:`sequence_length` checks the declarations and names the lengths when they differ).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pixyz_zoo.modalities import Modality

__all__ = ["SequenceDecoderNet", "SequenceEncoderNet", "sequence_length"]


def sequence_length(modalities: Sequence[Modality]) -> int:
    """The common number of time steps ``T`` of sequence modalities of shape ``(T, d)``."""
    flat = [m for m in modalities if len(m.shape) != 2]
    if flat:
        shapes = ", ".join(f"{m.name}: {m.shape}" for m in flat)
        raise ValueError(
            f"the LSTM networks read sequences of shape (T, d) (time steps, features); {shapes} is not "
            "one: use arch='mlp' (or 'conv' for images)"
        )
    lengths = {m.name: m.shape[0] for m in modalities}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}: T={t}" for name, t in lengths.items())
        raise ValueError(
            f"the sequences have different lengths ({listed}); the LSTM networks read every modality "
            "over the same time steps: crop, pad or resample them to one length"
        )
    return next(iter(lengths.values()))


class SequenceEncoderNet(nn.Module):
    """LSTM over ``(batch, T, sum d_i)`` (the inputs concatenated per step) -> last hidden -> ``out_dim``."""

    def __init__(self, in_dims: Sequence[int], out_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.lstm = nn.LSTM(int(sum(in_dims)), hidden, batch_first=True)
        self.head = nn.Linear(hidden, out_dim)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


class SequenceDecoderNet(nn.Module):
    """A vector ``(batch, in_dim)`` fed at each of ``length`` LSTM steps -> ``(batch, T, out_dim)``.

    With ``out_channels=2`` (a per-example scale) the output is ``(batch, 2T, out_dim)``: the
    means of the ``T`` steps, then the raw scales, the layout the zoo's decoders split along axis 1.
    """

    def __init__(self, in_dim: int, length: int, out_dim: int, hidden: int = 128, out_channels: int = 1):
        super().__init__()
        self.length, self.out_dim, self.out_channels = int(length), int(out_dim), int(out_channels)
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, out_dim * out_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        steps = h.flatten(1).unsqueeze(1).expand(-1, self.length, -1)
        y = self.out(self.lstm(steps)[0])
        if self.out_channels == 1:
            return y
        return torch.cat(y.chunk(self.out_channels, dim=-1), dim=1)
