r"""A purely generative translation baseline: observed modalities -> one target modality.

Tsai et al. (ICLR 2019, sec. 3.3, "missing modalities") compare MFM's surrogate inference with a
model trained only to generate the missing modality from the observed ones (their Seq2Seq
baseline). Here it is a deterministic encoder of the observed modalities ``X_O`` (their flattened
values concatenated into an MLP) and the zoo's decoder of the target's likelihood family:

.. math::
    f = E(X_O), \qquad p(t, f | X_O) = p(t|f)\, \delta(f - E(X_O)), \qquad
    \mathcal{L} = \mathbb{E}_{q(f|X_O)}\big[-\log p(t|f)\big] = -\log p(t | X_O)

averaged over the batch, with :math:`q(f|X_O) = \delta(f - E(X_O))` the same point mass (the
encoder is the generative model's own map, so it is also the exact posterior). There is no prior:
the model generates the target from the observed modalities only (``generate(batch,
given=observed, targets=[target])``), and its test log-likelihood is the conditional
``log p(t | X_O)`` itself (``test_metrics``; the ELBO and importance-weighted bounds of the run's
evaluation do not apply).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import LogProb

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions import MLP, decoder_for, decoder_network, decoder_output_channels
from pixyz_zoo.distributions.deterministic import DeterministicEncoder
from pixyz_zoo.modalities import Modality, check_modalities
from pixyz_zoo.models.base import ZooModel


def split_observed(
    modalities: dict[str, Modality], observed: Sequence[str] | None, target: str | None
) -> tuple[list[str], str]:
    """``(observed, target)`` checked against the data (defaults: the last modality from the others)."""
    modalities = check_modalities(modalities)
    names = list(modalities)
    if len(names) < 2:
        raise ValueError(
            f"translation generates one modality from others: it needs at least 2 modalities, got {names}"
        )
    if target is None:
        target = names[-1]
    elif target not in modalities:
        raise KeyError(f"target={target!r} is not a modality of the data: choose one of {names}")
    if observed is None:
        observed = [m for m in names if m != target]
    else:
        observed = list(observed)
        unknown = [m for m in observed if m not in modalities]
        if unknown:
            raise KeyError(
                f"observed={observed!r}: {unknown} are not modalities of the data: choose among {names}"
            )
        if not observed:
            raise ValueError(
                f"observed is empty: name at least one modality to translate from, e.g. {names[:1]}"
            )
        if len(set(observed)) != len(observed):
            raise ValueError(f"observed={observed!r} names a modality twice")
        if target in observed:
            raise ValueError(
                f"target {target!r} is also observed ({observed}): a translation model generates a modality "
                "it does not see; remove it from observed or choose another target"
            )
    return [m for m in names if m in observed], target  # the data's order


class Translation(ZooModel):
    """``p(t|f) delta(f - E(X_O))``: the target generated from a deterministic code of the observed."""

    name = "translation"
    description = (
        "purely generative translation (Tsai et al. 2019's baseline for missing modalities): f = E(observed) "
        "by an MLP, the target's decoder p(t|f); loss -log p(t | observed)"
    )
    likelihood_not_applicable = (
        "the translation model has no latent prior (f is a deterministic function of the observed "
        "modalities), so the ELBO and the importance-weighted bound do not apply; its conditional "
        "log-likelihood log p(target | observed) is target_log_likelihood"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: list[str] | None = None,
        target: str | None = None,
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        decoder_scale: str | float | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        observed, target = split_observed(modalities, observed, target)
        self.observed, self.target = observed, target
        code = "f"
        while code in modalities:  # the code's name must not be a modality's
            code += "_"
        self.code = code
        t = modalities[target]
        network = MLP(sum(modalities[m].dim for m in observed), z_dim, hidden)
        # the same point mass, as the generative model's p(f|X_O) and as the inference q(f|X_O)
        self.p_f = DeterministicEncoder(network, observed, code, name="p")
        self.q = DeterministicEncoder(network, observed, code, name="q")
        out = decoder_output_channels(t, decoder_scale)
        self.p_t = decoder_for(
            t, decoder_network(t, z_dim, "mlp", hidden, out), cond_var=[code], name="p", scale=decoder_scale
        )
        loss = E(self.q, -LogProb(self.p_t)).mean()
        super().__init__(
            loss,
            distributions=[self.p_t, self.q],
            modalities={m: modalities[m] for m in modalities if m in (*observed, target)},
            generative=self.p_t * self.p_f,
            inference=self.q,
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                observed=list(observed),
                target=target,
                z_dim=z_dim,
                hidden=list(hidden),
                decoder_scale=decoder_scale,
            ),
        )

    # ------------------------------------------------------------------ the zoo's surface
    def default_targets(self) -> list[str]:
        return [self.target]

    def check_targets(self, targets: Sequence[str]) -> list[str]:
        targets = self._check_given(targets)
        others = [m for m in targets if m != self.target]
        if others:
            raise ValueError(
                f"translation generates only its target {self.target!r}, not {others}; train another "
                f"translation model with target={others[0]!r} (-o target={others[0]})"
            )
        return targets

    def inference_for(self, given: Sequence[str]) -> Distribution:
        """``q(f|X_O)`` when ``given`` holds every observed modality (others given are not read)."""
        given = self._check_given(given)
        missing = [m for m in self.observed if m not in given]
        if missing:
            sources = [m for m in given if m != self.target]
            retrain = (
                f", or train a translation model with observed={sources!r}"
                if sources
                else " (it has no prior to generate from without them)"
            )
            raise ValueError(
                f"translation encodes all of its observed modalities {self.observed}; {missing} not given. "
                f"Give them{retrain}"
            )
        return self.q

    def sample_latents(
        self,
        batch: dict[str, torch.Tensor] | None,
        given: Sequence[str],
        n_samples: int = 1,
        n: int | None = None,
    ) -> dict[str, torch.Tensor]:
        self.inference_for(given)  # there is no prior: the observed modalities must be given
        return super().sample_latents(batch, given, n_samples, n)

    def reconstruct(
        self, batch: dict[str, torch.Tensor], sample_latent: bool = False
    ) -> dict[str, torch.Tensor]:
        """The target translated from the observed modalities (the observed ones are not generated)."""
        self._check_reconstructed_batch(batch, self.observed, from_fewer=False)
        return self.generate(batch, given=self.observed, sample_latent=sample_latent)

    @torch.no_grad()
    def test_metrics(self, data: MultimodalDataset, batch_size: int = 100) -> dict[str, Any]:
        """On ``data``: ``log p(t | X_O)`` per example (``target_log_likelihood``), the squared error of
        the translated target per example (``reconstruction_squared_error_<t>``, as MFM's) and that of
        the data's mean (``mean_squared_error_<t>``: predicting every example by the mean of ``data``),
        and the accuracy when the target is a class label (``target_accuracy``)."""
        t = self.target
        batches = data.batches(batch_size, generator=torch.Generator().manual_seed(0))
        mean = sum(b[t].sum(0) for b in batches) / len(data)
        log_lik = squared = squared_mean = 0.0
        correct = 0
        for batch in data.batches(batch_size, generator=torch.Generator().manual_seed(0)):
            latents = self.encode(batch, self.observed)
            log_lik += float(self.log_likelihood(t, latents, batch).sum())
            guess = self.decode(latents, [t])[t].cpu()
            squared += float((guess - batch[t]).pow(2).flatten(1).sum(1).sum())
            squared_mean += float((mean - batch[t]).pow(2).flatten(1).sum(1).sum())
            if self.modalities[t].is_label:
                correct += int((guess.argmax(-1) == batch[t].argmax(-1)).sum())
        n = len(data)
        metrics = {
            "target_log_likelihood": log_lik / n,
            f"reconstruction_squared_error_{t}": squared / n,
            f"mean_squared_error_{t}": squared_mean / n,
        }
        if self.modalities[t].is_label:
            metrics["target_accuracy"] = correct / n
        return metrics
