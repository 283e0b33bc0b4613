r"""Missing-modality inference by iterative sampling (JMVAE paper, sec. 3.3, eq. 6; app. A.1).

A JMVAE encoder ``q(z|x,w)`` needs every modality. When ``w`` is missing, the paper imputes it
with the Markov chain of the transition kernel (Rezende et al. 2014, the paper's ref. [8])

.. math::
    T(\tilde{w}|x, w) = \int p(\tilde{w}|z)\, q(z|x, w)\, dz \qquad \text{(eq. 6)}

started from ``w = 0`` (sec. 4.4 and app. A.1: "the initial value of the missing modality is 0"),
and finally infers ``z`` from the observed and the imputed modalities. :class:`IterativeSampling`
packages this procedure as a Pixyz distribution ``q(z|x)``: its conditioning variables are the
observed modalities only, so it plugs into everything that takes an inference distribution
(``ZooModel.sample_latents``, ``encode``, ``generate``, likelihood estimates).

One evaluation (``get_params``, hence ``sample``, ``sample_mean``, ``get_log_prob``) runs:

1. ``w_0 = 0`` for every missing modality;
2. ``steps`` times: ``z ~ t(z|x, w_n)`` then ``w_{n+1} ~ p(w|z)`` (a sample, not the mean),
   where the transition latent ``t`` is the encoder itself (JMVAE) or, for a hierarchical
   JMVAE, the bottom layer ``q(z_1|x,w)`` that the decoders read (eq. 8-9);
3. returns the parameters of ``q(z|x, w_N)``.

Each row of the batch runs its own chain (all operations are row-wise), so repeating the batch
``S`` times gives ``S`` independent chains per example. The chain runs without gradient; only the
final encoder call is differentiable (with respect to the observed inputs and the parameters).
``steps = 0`` is the zero-filling of the missing inputs. ``steps`` is a plain attribute, so an
evaluation can sweep it (the paper's Fig. 4).

The parameters are random: two calls (e.g. ``sample`` then ``get_log_prob``) run two chains and
see different imputations, so ``get_log_prob`` of a sample is *not* the density it was drawn
from. Code that needs a sample together with its density, as an importance weight does, takes
one ``get_params`` and samples and scores from those parameters (:meth:`sample_with_log_prob`;
:func:`pixyz_zoo.evaluation.log_weights` does so for every distribution that declares
``random_parameters``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from pixyz.distributions import Normal
from pixyz.distributions.distributions import Distribution
from pixyz.utils import convert_latex_name

__all__ = ["IterativeSampling"]


class IterativeSampling(Normal):
    r"""``q(z|observed)`` by imputing the missing modalities with eq. (6), then ``q(z|observed, imputed)``.

    Args:
        encoder: the Gaussian encoder over all modalities, e.g. ``q(z|x,w)`` (any Pixyz ``Normal``).
        decoders: the decoders ``p(m|...)`` of the missing modalities (extra decoders are ignored).
            Their conditioning variables may be latents of ``transition`` and observed modalities
            (a CVAE's ``p(x|z,w)``).
        missing: shape of one example of each missing modality, ``{"x": (1, 28, 28)}``.
        steps: number of transitions ``N`` (the paper's Table 1 uses 100).
        transition: the distribution that samples the latents the decoders read inside the chain
            (default: ``encoder``); a hierarchical JMVAE passes ``q(z_1|x,w)``.
        name: printed name (default: the encoder's).
    """

    def __init__(
        self,
        encoder: Distribution,
        decoders: Sequence[Distribution],
        missing: Mapping[str, Sequence[int]],
        steps: int = 100,
        transition: Distribution | None = None,
        name: str | None = None,
    ) -> None:
        if encoder.distribution_name != "Normal" or len(encoder.var) != 1:
            raise ValueError(
                f"IterativeSampling needs a Gaussian encoder over one latent, got {encoder.prob_text} "
                f"({encoder.distribution_name or type(encoder).__name__})"
            )
        missing = {name_: tuple(int(s) for s in shape) for name_, shape in missing.items()}
        if not missing:
            raise ValueError(f"IterativeSampling over {encoder.prob_text}: no missing modality given")
        not_inputs = [m for m in missing if m not in encoder.cond_var]
        if not_inputs:
            raise ValueError(
                f"{not_inputs} are not inputs of {encoder.prob_text}: only its conditioning "
                f"variables {list(encoder.cond_var)} can be missing"
            )
        observed = [v for v in encoder.cond_var if v not in missing]
        if not observed:
            raise ValueError(
                f"every input of {encoder.prob_text} is missing: nothing to condition on. "
                "Sample the latent from the prior instead"
            )
        chosen: dict[str, Distribution] = {}
        for decoder in decoders:
            if len(decoder.var) == 1 and decoder.var[0] in missing:
                chosen[decoder.var[0]] = decoder
        lacking = [m for m in missing if m not in chosen]
        if lacking:
            raise ValueError(
                f"IterativeSampling needs a decoder p({lacking[0]}|...) for each missing modality"
            )
        steps = int(steps)
        if steps < 0:
            raise ValueError(f"the number of iterative-sampling steps must be >= 0, got {steps}")
        transition = encoder if transition is None else transition
        bad = [v for v in transition.cond_var if v not in encoder.cond_var]
        if bad:
            raise ValueError(
                f"the transition {transition.prob_text} must read only the encoder's inputs "
                f"{list(encoder.cond_var)}, not {bad}"
            )
        super().__init__(
            var=list(encoder.var),
            cond_var=observed,
            name=encoder.name if name is None else name,
            features_shape=encoder.features_shape,
        )
        self.encoder = encoder
        self.transition = transition
        self.decoders = torch.nn.ModuleDict(chosen)
        self.missing = missing
        self.steps = steps

    #: ``get_params`` draws a fresh imputation on every call (see the module notes).
    random_parameters = True

    # ------------------------------------------------------------------ the chain
    @torch.no_grad()
    def impute(self, x_dict: Mapping[str, torch.Tensor], steps: int | None = None) -> dict[str, torch.Tensor]:
        """The missing modalities after ``steps`` transitions of eq. (6) (default ``self.steps``)."""
        steps = self.steps if steps is None else int(steps)
        observed = {v: x_dict[v] for v in self.cond_var}
        first = next(iter(observed.values()))
        rows = first.shape[0]
        imputed = {
            m: torch.zeros(rows, *shape, device=first.device, dtype=first.dtype)
            for m, shape in self.missing.items()
        }
        transition_inputs = self.transition.cond_var
        for _ in range(steps):
            values = {**observed, **imputed}
            latents = self.transition.sample({v: values[v] for v in transition_inputs}, return_all=False)
            values.update(latents)
            imputed = {
                m: decoder.sample({v: values[v] for v in decoder.cond_var}, return_all=False)[m].to(
                    first.dtype
                )
                for m, decoder in self.decoders.items()
            }
        return imputed

    def get_params(self, params_dict: dict | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """Parameters of ``q(z|observed, imputed)`` after the chain (a fresh chain per call)."""
        params_dict = {} if params_dict is None else params_dict
        lacking = [v for v in self.cond_var if v not in params_dict]
        if lacking:
            raise ValueError(f"{self.prob_text} needs the observed modalities {lacking} in its input")
        observed = {v: params_dict[v] for v in self.cond_var}
        imputed = self.impute(observed)
        return self.encoder.get_params({**observed, **imputed}, **kwargs)

    @torch.no_grad()
    def sample_with_log_prob(self, x_dict: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample per row and its log-density ``log q(z|x, w_N)`` under the imputation ``w_N``
        that drew it (one chain per row), summed over features: ``(z, log_q)``."""
        params = self.get_params({v: x_dict[v] for v in self.cond_var})
        dist = self.distribution_torch_class(**params)
        z = dist.sample()
        return z, dist.log_prob(z).reshape(len(z), -1).sum(dim=1)

    # ------------------------------------------------------------------ printing
    @property
    def prob_factorized_text(self) -> str:
        """``q(z|x,\\hat{w}^{(N)})`` with ``\\hat{w}^{(n+1)} \\sim \\int p(w|z) q(z|x,\\hat{w}^{(n)}) dz``."""
        z = ",".join(convert_latex_name(v) for v in self.var)
        hats = {m: rf"\hat{{{convert_latex_name(m)}}}" for m in self.missing}

        def inputs(superscript: str) -> str:
            return ",".join(
                f"{hats[v]}^{{({superscript})}}" if v in hats else convert_latex_name(v)
                for v in self.encoder.cond_var
            )

        t_var = ",".join(convert_latex_name(v) for v in self.transition.var)
        kernel = []
        for m, decoder in self.decoders.items():
            cond = ",".join(convert_latex_name(v) for v in decoder.cond_var)
            kernel.append(
                rf"{hats[m]}^{{(n+1)}} \sim \int {decoder.name}({convert_latex_name(m)}|{cond})"
                rf"{self.transition.name}({t_var}|{inputs('n')}) d{t_var}"
            )
        start = ",".join(f"{hats[m]}^{{(0)}}" for m in self.missing)
        return (
            f"{self.encoder.name}({z}|{inputs('N')}),\\ "
            + ",\\ ".join(kernel)
            + f",\\ {start}=0,\\ N={self.steps}"
        )

    @property
    def prob_joint_factorized_and_text(self) -> str:
        """Reads as ``q(z|x) \\approx q(z|x,\\hat{w}^{(N)})`` plus the iterative-sampling kernel (eq. 6)."""
        return f"{self.prob_text} \\approx {self.prob_factorized_text}"

    def __repr__(self) -> str:
        return f"IterativeSampling({self.prob_text} from {self.encoder.prob_text}, steps={self.steps})"
