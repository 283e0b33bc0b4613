"""A loss prints in the order it was written (``pixyz_zoo.distributions.text.loss_text``): Pixyz's
SymPy text sorted every sum, so that TELBO printed its four KL terms before its four expectations and
``beta * KL`` as ``KL beta``. The terms themselves are Pixyz's, to the character."""

from __future__ import annotations

import pytest
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb, Parameter
from pixyz.losses.losses import Loss

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.distributions import MLP, BernoulliDecoder, GaussianEncoder, standard_normal
from pixyz_zoo.distributions.text import _latex, loss_text
from pixyz_zoo.models import MODELS, build_model
from tests.registered_models import built

KL = r"D_{KL} \left[q(z|x)||p(z) \right]"
RECONSTRUCTION = r"\mathbb{E}_{q(z|x)} \left[- \log p(x|z) \right]"


@pytest.fixture(scope="module")
def vae_parts():
    q = GaussianEncoder(MLP(64, 4, (8,)), cond_var=["x"], name="q")
    p_x = BernoulliDecoder(MLP(2, 64, (8,)), var="x", cond_var=["z"], name="p")
    return q, p_x, standard_normal("z", 2, name="p")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_without_the_order_the_text_is_pixyzs_own_for_every_model(name):
    """The printer walks every node of every registered model's losses and terms: evaluated as
    SymPy evaluates Pixyz's symbols, it gives Pixyz's text to the character (no term lost or
    changed); only the order differs in :func:`loss_text`."""
    model, _ = built(name)
    losses = [model.loss_cls, model.test_loss_cls, *(term.loss for term in model.test_terms)]
    for loss in [loss for loss in losses if loss is not None]:
        assert _latex(loss, ordered=False) == loss.loss_text


def test_an_elbo_prints_reconstruction_first_and_beta_before_the_kl(vae_parts):
    q, p_x, prior = vae_parts
    loss = (E(q, -LogProb(p_x)) + Parameter("beta") * KullbackLeibler(q, prior)).mean()
    assert loss_text(loss) == rf"mean \left({RECONSTRUCTION} + \beta {KL} \right)"
    assert loss.loss_text == rf"mean \left({KL} \beta + {RECONSTRUCTION} \right)"  # Pixyz's order


def test_differences_negations_quotients_and_wrappers_keep_their_order(vae_parts):
    q, p_x, prior = vae_parts
    kl, log_p = KullbackLeibler(q, prior), LogProb(p_x)
    assert loss_text(kl - (log_p + kl)) == rf"{KL} - \log p(x|z) - {KL}"
    negated = -kl
    assert loss_text(-negated) == KL
    assert loss_text(-(log_p + Parameter("C"))) == r"- \log p(x|z) - C"
    assert loss_text(Parameter("gamma") * (kl - Parameter("C")).abs()) == rf"\gamma |{KL} - C|"
    assert loss_text((kl + log_p) / 7) == rf"\frac{{{KL} + \log p(x|z)}}{{7}}"
    assert loss_text((kl + log_p).sum()) == rf"sum \left({KL} + \log p(x|z) \right)"


def test_sum_of_a_list_prints_without_its_starting_zero(vae_parts):
    """``sum(losses)`` starts at 0 (a ``ValueLoss(0)``): it printed as ``0 - \\log p(x|z) - ...``."""
    q, p_x, prior = vae_parts
    reconstruction = sum(LogProb(decoder) for decoder in [p_x, p_x])
    expected = r"\mathbb{E}_{q(z|x)} \left[- \log p(x|z) - \log p(x|z) \right]"
    assert loss_text(E(q, -reconstruction)) == expected
    assert loss_text(1 * KullbackLeibler(q, prior)) == KL
    assert loss_text(0 + KullbackLeibler(q, prior) * 1) == KL


def test_numbers_lead_their_products_and_signs_combine(vae_parts):
    """A negated product of a negative number printed as ``- \\left(-2\\right) D_{KL}`` and a
    difference of one as ``\\log p(x|z) - - 2 D_{KL}``: numbers lead their products and the signs
    combine, as SymPy's own text has them."""
    q, p_x, prior = vae_parts
    kl, log_p = KullbackLeibler(q, prior), LogProb(p_x)
    assert loss_text(-(-2 * kl)) == rf"2 {KL}"
    assert loss_text(log_p - (-2 * kl)) == rf"\log p(x|z) + 2 {KL}"
    assert loss_text(kl * 2) == rf"2 {KL}"
    assert loss_text(kl * (-1)) == rf"- {KL}"
    assert loss_text(kl / (-2)) == rf"- \frac{{{KL}}}{{2}}"
    assert loss_text(-(0.5 * (kl + log_p))) == rf"- 0.5 \left({KL} + \log p(x|z)\right)"


class LossOfOnesOwn(Loss):
    """A user's loss whose symbol is its LaTeX text (a string, not a SymPy expression)."""

    def __init__(self) -> None:
        super().__init__(input_var=["x"])

    @property
    def _symbol(self) -> str:
        return r"\mathrm{R}(x)"

    def forward(self, x_dict, **kwargs):
        return x_dict["x"].flatten(1).sum(1), {}


def test_a_loss_of_ones_own_whose_symbol_is_text_prints_as_that_text(vae_parts):
    """SymPy cannot parse a LaTeX string: ``print(model)`` failed on such a term; Pixyz's own text
    mangles it to ``\\mathtt{\\text{...}}`` alone and fails beside another term."""
    q, _, prior = vae_parts
    assert loss_text(LossOfOnesOwn()) == r"\mathrm{R}(x)"
    assert loss_text(KullbackLeibler(q, prior) + 0.1 * LossOfOnesOwn()) == rf"{KL} + 0.1 \mathrm{{R}}(x)"


def test_telbo_prints_its_three_elbos_in_turn():
    """TELBO's ELBO(x,y1,y2) + ELBO(x) + ELBO(y1) + ELBO(y2): each expectation beside its KL."""
    data = load_dataset("attribute-digits", "test")
    text = build_model("telbo", data.modalities, hidden=[8], z_dim=2).loss_latex
    order = ["x,y_{1},y_{2}", "x", "y_{1}", "y_{2}"]
    pieces = []
    for given in order:
        pieces += [rf"\mathbb{{E}}_{{q(z|{given})}}", rf"\beta D_{{KL}} \left[q(z|{given})||p(z) \right]"]
    positions = [text.index(piece) for piece in pieces]
    assert positions == sorted(positions), text


def test_mopoe_prints_its_subsets_kl_in_the_order_of_the_term_table():
    data = load_dataset("trimodal-digits", "test")
    model = build_model("mopoe", data.modalities, hidden=[8], z_dim=2)
    subsets = ["m", "s", "t", "m,s", "m,t", "s,t", "m,s,t"]
    kls = [rf"D_{{KL}} \left[\tilde{{q}}(z|{s})||p(z) \right]" for s in subsets]
    positions = [model.loss_latex.index(kl) for kl in kls]
    assert positions == sorted(positions)
    term_kls = [term.text for term in model.test_terms if "D_{KL}" in term.text]
    assert [next(kl for kl in kls if kl in text) for text in term_kls] == kls


def test_print_model_shows_the_ordered_loss():
    data = load_dataset("digits", "test")
    model = build_model("vae", data.modalities, hidden=[8], z_dim=2)
    assert f"Loss function:\n  {model.loss_latex}\nOptimizer:\n  Adam" in str(model)
    assert model.loss_latex.startswith(r"mean \left(\mathbb{E}_{q(z|x)}")


def test_a_notebook_shows_a_model_as_rendered_formulas():
    """``model`` as a cell's last line showed nn.Module's tree of networks; a notebook now renders
    the factorisation and the loss (Markdown with LaTeX), with ``print(model)`` folded beneath."""
    formatters = pytest.importorskip("IPython.core.formatters")
    data = load_dataset("trimodal-digits", "test")
    model = build_model("mfm", data.with_labels().modalities, hidden=[8], z_dim=2)
    shown, _ = formatters.DisplayFormatter().format(model)
    markdown = shown["text/markdown"]
    assert markdown.startswith(r"**MFM**: MFM (Tsai et al. 2019): multimodal discriminative factor z\_y")
    assert "generative model: $p(m,s,t,y,z_{y}," in markdown
    assert f"$${model.loss_latex}$$" in markdown
    assert f"```\n{model}\n```" in markdown
