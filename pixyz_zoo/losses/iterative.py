r"""The training objective of iterative amortized inference (Marino, Yue & Mandt 2018, sec. 3-4).

For a :class:`~pixyz_zoo.distributions.refinement.RefinedGaussian` with refinement loss
:math:`\mathcal{F}` (the negative ELBO) and steps :math:`\lambda_0..\lambda_T`:

.. math::
    \mathcal{J} = \frac{1}{T+1}\sum_{t=0}^{T} \operatorname{mean}_x \mathcal{F}(\lambda_t)

- the inference networks (the encoder giving :math:`\lambda_0`, the update network giving
  :math:`\lambda_{t+1}`) are trained on :math:`\mathcal{J}`, with the gradient stopped between
  steps: the term at step :math:`t` reaches only the network that produced :math:`\lambda_t`
  (the authors' code detaches the parameters and gradients it feeds to the update network);
- the decoder is trained on the final term :math:`\mathcal{F}(\lambda_T)` only (the authors zero
  the decoder's gradient before the last iteration).

Each intermediate term's parameter gradient comes out of the same backward pass that gives
:math:`\nabla_\lambda\mathcal{F}(\lambda_t)` for the next update, and its graph is freed at once,
so a training step costs about ``T + 1`` loss evaluations and its memory does not grow with ``T``.
With ``T = 0`` this is the VAE's negative ELBO. With a :class:`GradientStep` rule the update has
no parameters: the encoder is trained on :math:`\mathcal{F}(\lambda_0)/(T+1)` and the decoder on
:math:`\mathcal{F}(\lambda_T)` (the "VAE + SVI" baseline of Kim et al. 2018, sec. 5).
"""

from __future__ import annotations

import sympy
import torch
from pixyz.losses.losses import Loss

from pixyz_zoo.distributions.refinement import RefinedGaussian
from pixyz_zoo.distributions.shared_parameters import remember_parameters
from pixyz_zoo.distributions.text import loss_text

__all__ = ["IterativeInferenceLoss"]


class IterativeInferenceLoss(Loss):
    """:math:`\\mathcal{J}` above, a scalar (already averaged over the batch).

    Evaluating it with gradients enabled accumulates the intermediate terms' gradients into the
    inference parameters' ``.grad`` (call ``zero_grad`` first, as ``ZooModel.train`` does) and
    returns a tensor whose backward adds the final term's: decoder with weight 1, inference
    networks with weight ``1/(T+1)``. Its value is :math:`\\mathcal{J}`. Under ``torch.no_grad()``
    it only evaluates :math:`\\mathcal{J}`. ``show_start``: print where :math:`\\lambda_0` comes from
    (for losses that sum refinements of one objective from several starts).
    """

    def __init__(self, refined: RefinedGaussian, show_start: bool = False) -> None:
        super().__init__(input_var=list(refined.cond_var))
        self.refined = refined
        self.show_start = show_start

    def forward(self, x_dict: dict, **kwargs) -> tuple[torch.Tensor, dict]:
        refined = self.refined
        steps = refined.steps
        training = torch.is_grad_enabled()
        weight = 1.0 / (steps + 1)
        result = refined.run(x_dict, train_weight=weight if training else None)
        # other terms of the same loss (a distillation towards q_T) reuse lambda_T, not a second run
        inputs = {k: x_dict[k] for k in refined.cond_var}
        remember_parameters(refined, inputs, {"loc": result.loc, "scale": result.scale})
        loc, scale = result.loc, result.scale
        if training and steps > 0:
            # the inference networks see the final term with weight 1/(T+1); the hook sits on an
            # alias, so gradients that other terms send to lambda_T are not rescaled
            loc, scale = (t.view_as(t) for t in (loc, scale))
            for tensor in (loc, scale):
                if tensor.requires_grad:
                    tensor.register_hook(lambda grad: grad * weight)
        final = refined.loss.eval({**x_dict, **refined.posterior.feed(loc, scale)}).mean()
        if steps == 0:
            return final, {}
        total = (sum(value.mean() for value in result.losses) + final.detach()) * weight
        return final + (total - final.detach()), {}

    @property
    def _symbol(self) -> sympy.Symbol:
        refined = self.refined
        t = refined.steps
        # several refinements of one loss differ only by where they start
        start = rf",\ \lambda_0 \text{{ of }} {refined.initial.prob_text}" if self.show_start else ""
        objective = loss_text(refined.loss)
        return sympy.Symbol(
            rf"\frac{{1}}{{{t + 1}}}\sum_{{t=0}}^{{{t}}} \operatorname{{mean}} \left[{objective}"
            rf"\right]_{{\lambda=\lambda_t{start}}}"
        )
