"""Multimodal metrics (coherence, Fréchet distance, probes, cosine, subset likelihoods) and the
cross-modal grids, on a tiny in-memory trimodal dataset whose class every modality shows."""

from __future__ import annotations

import io
import math

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import matplotlib

matplotlib.use("Agg")

# isort: split
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions import GaussianEncoder, decoder_for, standard_normal
from pixyz_zoo.evaluation import classifier as classifier_module
from pixyz_zoo.evaluation import cross_modal_accuracy, evaluate_log_likelihood
from pixyz_zoo.evaluation.multimodal import (
    classifier_features,
    coherence,
    coherence_table,
    cross_modal_fd,
    evaluate_multimodal,
    frechet_distance,
    gaussian_frechet_distance,
    inception_features,
    joint_coherence,
    latent_cosine_similarity,
    latent_linear_probe,
    multimodal_table,
    nonempty_subsets,
    subset_log_likelihood,
    train_modality_classifiers,
)
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import ZooModel, build_model
from pixyz_zoo.plots import cross_modal_grid, decode_text, subset_grids

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ALPHABET = tuple(" " + "".join(sorted(set("".join(WORDS)))))
MODALITIES = {
    "m": Modality("m", (1, 8, 8), "bernoulli"),
    "s": Modality("s", (3, 8, 8), "laplace"),
    "t": Modality("t", (8, len(ALPHABET)), "categorical", labels=ALPHABET),
}


def text(words: list[str]) -> torch.Tensor:
    index = torch.tensor([[ALPHABET.index(c) for c in w.ljust(8)] for w in words])
    return nn.functional.one_hot(index, len(ALPHABET)).float()


def make_data(n: int, seed: int, binarize: str = "none", name: str = "toy-mst") -> MultimodalDataset:
    """Balanced classes; each modality is its class prototype (fixed across splits) plus noise."""
    prototypes = torch.Generator().manual_seed(123)
    proto_m = (torch.rand(10, 1, 8, 8, generator=prototypes) > 0.5).float()
    proto_s = torch.rand(10, 3, 8, 8, generator=prototypes)
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=g)]
    m = (0.1 + 0.8 * proto_m[labels] + 0.1 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1)
    s = (proto_s[labels] + 0.05 * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 1)
    tensors = {"m": m, "s": s, "t": text([WORDS[i] for i in labels])}
    classes = tuple(str(i) for i in range(10))
    return MultimodalDataset(name, tensors, MODALITIES, binarize=binarize, labels=labels, classes=classes)


@pytest.fixture(scope="module")
def data():
    return make_data(600, seed=0), make_data(1000, seed=1)


@pytest.fixture(scope="module")
def classifiers(data, tmp_path_factory):
    return train_modality_classifiers(data[0], tmp_path_factory.mktemp("cache"), epochs=3, device="cpu")


class Oracle:
    """Generates the true modalities of the very examples it is given (looked up), and coherent
    prior samples (real examples of one class for every modality)."""

    def __init__(self, data: MultimodalDataset) -> None:
        self.data, self.modalities = data, data.modalities
        self.index = {  # images are unique (noisy); a text only names its class
            name: {row.numpy().tobytes(): i for i, row in enumerate(data.tensors[name])}
            for name in ("m", "s")
        }

    def rows(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        name = next(n for n in ("m", "s") if n in batch)
        return torch.tensor([self.index[name][row.numpy().tobytes()] for row in batch[name]])

    def pick(self, classes: torch.Tensor) -> torch.Tensor:
        """A random example of each class."""
        members = [torch.nonzero(self.data.labels == c)[:, 0] for c in classes.tolist()]
        return torch.stack([m[torch.randint(len(m), ())] for m in members])

    def generate(self, batch=None, given=(), targets=None, n=None, sample_latent=True):
        if given:
            assert set(batch) == set(given)  # only the given modalities are handed over
            if list(given) == ["t"]:  # an example of the class the text spells
                rows = self.pick(
                    torch.tensor([WORDS.index(w) for w in decode_text(batch["t"], MODALITIES["t"])])
                )
            else:
                rows = self.rows(batch)
            return {t: self.data.tensors[t][rows] for t in targets}
        classes = torch.randint(10, (n,))
        return {t: self.data.tensors[t][self.pick(classes)] for t in targets}


class Shuffled(Oracle):
    """Generates real examples chosen at random, independently for every modality."""

    def generate(self, batch=None, given=(), targets=None, n=None, sample_latent=True):
        rows = len(next(iter(batch.values()))) if given else n
        return {t: self.data.tensors[t][torch.randint(len(self.data), (rows,))] for t in targets}


def test_nonempty_subsets():
    assert nonempty_subsets(["m", "s", "t"]) == [
        ("m",), ("s",), ("t",), ("m", "s"), ("m", "t"), ("s", "t"), ("m", "s", "t"),
    ]  # fmt: skip
    assert nonempty_subsets("ab") == [("a",), ("b",), ("a", "b")]


def test_classifiers_of_the_dataset_labels_are_accurate_and_cached(data, classifiers, tmp_path, monkeypatch):
    train, test = data
    assert set(classifiers) == {"m", "s", "t"}
    assert classifiers["m"].arch == "conv" and classifiers["t"].arch == "mlp"
    for c in classifiers.values():
        assert c.uses_data_labels and c.classes == train.classes
        assert c.accuracy(test) > 0.98
    assert classifiers["s"].features(test.tensors["s"][:5]).shape == (5, 128)
    assert classifiers["t"].features(test.tensors["t"][:5]).shape == (5, 256)
    small = train.subset(slice(0, 100))
    first = train_modality_classifiers(small, tmp_path, epochs=1, modalities=["t"], device="cpu")
    assert [p.name.split("-")[3] for p in tmp_path.glob("classifier-*.pt")] == ["t"]
    assert list(tmp_path.glob("classifier-toy-mst-t-labels-*.pt"))
    monkeypatch.setattr(classifier_module, "_fit", lambda *a, **k: pytest.fail("trained again"))
    again = train_modality_classifiers(small, tmp_path, epochs=1, modalities=["t"], device="cpu")
    assert all(
        torch.equal(a, b) for a, b in zip(first["t"].parameters(), again["t"].parameters(), strict=True)
    )
    # the class labels are part of the cache key
    relabelled = MultimodalDataset(
        "toy-mst", small.tensors, MODALITIES, "none", labels=(small.labels + 1) % 10
    )
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        train_modality_classifiers(relabelled, tmp_path, epochs=1, modalities=["t"], device="cpu")
    # the existing cross-modal accuracy scores a classifier of the labels against data.labels
    assert cross_modal_accuracy(Oracle(test), test, ["m"], "s", classifier=classifiers["s"]) == 1.0


def test_coherence_of_an_oracle_is_one_and_of_a_shuffled_model_chance(data, classifiers):
    test = data[1]
    table = coherence_table(Oracle(test), test, classifiers)
    assert len(table) == 7 * 3 and set(table.values()) == {1.0}
    assert "coherence[m,s->t]" in table and "coherence[t->t]" in table
    for given, target in ((["m"], "s"), (["s", "t"], "m"), (["m", "s", "t"], "t")):
        assert coherence(Shuffled(test), test, classifiers, given, target) == pytest.approx(0.1, abs=0.05)
    assert joint_coherence(Oracle(test), classifiers, n=300) == 1.0
    assert joint_coherence(Shuffled(test), classifiers, n=1000) < 0.04  # chance: 1/100
    pair = joint_coherence(Shuffled(test), classifiers, n=1000, modalities=["m", "t"])
    assert pair == pytest.approx(0.1, abs=0.05)


def test_coherence_errors(data, classifiers):
    train, test = data
    # one modality may be named alone, as model.generate takes it
    assert coherence(Oracle(test), test, classifiers, "m", "s") == coherence(
        Oracle(test), test, classifiers, ["m"], "s"
    )
    with pytest.raises(KeyError, match="given modality"):
        coherence(Oracle(test), test, classifiers, ["x"], "s")
    with pytest.raises(KeyError, match="no classifier"):
        coherence(Oracle(test), test, {"m": classifiers["m"]}, ["m"], "s")
    unlabelled = MultimodalDataset("u", test.tensors, MODALITIES, "none")
    with pytest.raises(ValueError, match="no class labels"):
        coherence(Oracle(test), unlabelled, classifiers, ["m"], "s")
    with pytest.raises(ValueError, match="no class labels"):
        train_modality_classifiers(unlabelled, None, epochs=0)


def test_frechet_distance_closed_forms():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(500, 6, generator=g) @ torch.randn(6, 6, generator=g)).double()
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    # The trace term tr(S_a + S_b - 2 (S_a S_b)^{1/2}) cancels terms of the size of tr(S): float64
    # eigen-solvers guarantee a backward error of a small multiple of eps * ||S|| per eigenvalue,
    # which the square roots amplify (by 1/sqrt of the smallest eigenvalue), whatever the BLAS.
    # So the tolerance is absolute, 1e-9 of the traces: about 1e5 eps, far above rounding on any
    # machine, far below any real change of the distance.
    scale = float(torch.cov(x.T).trace())
    # equal covariances: the squared mean difference
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), abs=1e-9 * 2 * scale)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9 * 2 * scale)
    # commuting (diagonal) covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    expected = float((mu_a - mu_b).square().sum() + (sd_a - sd_b).square().sum())
    assert gaussian_frechet_distance(mu_a, sd_a.square().diag(), mu_b, sd_b.square().diag()) == pytest.approx(
        expected
    )
    samples = [mu + sd * torch.randn(100_000, 3, generator=g) for mu, sd in ((mu_a, sd_a), (mu_b, sd_b))]
    assert frechet_distance(*samples) == pytest.approx(expected, rel=0.02)
    # non-commuting covariances: against scipy's matrix square root, and symmetric
    scipy_linalg = pytest.importorskip("scipy.linalg")
    a, b = torch.randn(4, 4, generator=g).double(), torch.randn(4, 4, generator=g).double()
    cov_a, cov_b = a @ a.T + 0.1 * torch.eye(4), b @ b.T
    root = scipy_linalg.sqrtm((cov_a @ cov_b).numpy()).real
    reference = float((cov_a + cov_b).trace()) - 2 * root.trace() + 4.0
    mean_a, mean_b = torch.zeros(4), torch.full((4,), 1.0)
    tolerance = 1e-9 * float((cov_a + cov_b).trace())  # as above: relative to the traces that cancel
    assert gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(reference, abs=tolerance)
    assert gaussian_frechet_distance(mean_b, cov_b, mean_a, cov_a) == pytest.approx(reference, abs=tolerance)
    with pytest.raises(ValueError, match="different dimensions"):
        frechet_distance(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(torch.zeros(1, 2), torch.zeros(5, 2))


def test_cross_modal_fd_on_classifier_features(data, classifiers):
    test = data[1].subset(slice(0, 300))
    extractors = {m: classifier_features(classifiers[m]) for m in ("m", "s")}
    assert cross_modal_fd(Oracle(test), test, extractors, ["m"], "s") == pytest.approx(0.0, abs=1e-6)
    shuffled = cross_modal_fd(Shuffled(test), test, extractors, ["m"], "s")
    noise = cross_modal_fd(NoiseModel(), test, extractors, ["t"], "s")
    assert 0 <= shuffled < 0.2 * noise  # real images of random classes are still in-domain
    assert cross_modal_fd(Oracle(test), test, extractors, [], "m") < 0.2 * noise  # prior samples
    with pytest.raises(KeyError, match="no feature extractor"):
        cross_modal_fd(Oracle(test), test, extractors, ["m"], "t")


class NoiseModel:
    modalities = MODALITIES

    def generate(self, batch=None, given=(), targets=None, n=None, sample_latent=True):
        rows = len(next(iter(batch.values()))) if given else n
        return {t: torch.rand(rows, *MODALITIES[t].shape) for t in targets}


def test_inception_features_needs_a_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        inception_features(tmp_path / "missing.pth")
    from torchvision.models import inception_v3

    with torch.device("meta"):
        shapes = inception_v3(weights=None, aux_logits=False, init_weights=False).state_dict()
    g = torch.Generator().manual_seed(0)
    state = {
        k: torch.ones(v.shape)
        if k.endswith("running_var")
        else torch.zeros(v.shape, dtype=v.dtype)
        if not v.is_floating_point()
        else 0.05 * torch.randn(v.shape, generator=g)
        for k, v in shapes.items()
    }
    torch.save(state, tmp_path / "random.pth")
    extractor = inception_features(tmp_path / "random.pth", resize=75)
    features = extractor(torch.rand(3, 3, 8, 8))
    assert features.shape == (3, 2048) and torch.isfinite(features).all()
    assert extractor(torch.rand(2, 1, 8, 8)).shape == (2, 2048)  # grey images are repeated


class LabelEncoder:
    """encode() returns a one-hot of the true class (oracle) or random numbers."""

    modalities = MODALITIES

    def __init__(self, *datasets: MultimodalDataset, random: bool = False) -> None:
        self.random = random
        self.label_of = {
            row.numpy().tobytes(): int(y)
            for d in datasets
            for row, y in zip(d.tensors["m"], d.labels, strict=True)
        }

    def encode(self, batch, given):
        if self.random:
            return {"z": torch.randn(len(next(iter(batch.values()))), 10)}
        if "m" not in given:  # the text spells the class
            return {"z": batch["t"].flatten(1)}
        labels = torch.tensor([self.label_of[row.numpy().tobytes()] for row in batch["m"]])
        return {"z": nn.functional.one_hot(labels, 10).float()}


def test_latent_linear_probe_oracle_and_random(data):
    train, test = data
    oracle = LabelEncoder(train, test)
    assert latent_linear_probe(oracle, train, test, ["m"], max_train=300) == 1.0
    assert latent_linear_probe(oracle, train, test, ["m", "s"], max_train=300) == 1.0
    assert latent_linear_probe(oracle, train, test, ["t"], max_train=300) == 1.0
    chance = latent_linear_probe(LabelEncoder(random=True), train, test, ["s"], max_train=300)
    assert chance == pytest.approx(0.1, abs=0.05)


class SharedLatent:
    """Every subset infers the same latent mean (a fixed random vector per example), or the
    subsets infer its opposite."""

    modalities = MODALITIES

    def __init__(self, data: MultimodalDataset, sign: float = 1.0) -> None:
        self.oracle, self.sign = Oracle(data), sign
        self.z = torch.randn(len(data), 5, generator=torch.Generator().manual_seed(0))

    def encode(self, batch, given):
        z = self.z[self.oracle.rows(batch)]
        return {"z": z if len(given) == 3 else self.sign * z}


def test_cosine_similarity(data):
    test = data[1].subset(slice(0, 200))
    assert latent_cosine_similarity(SharedLatent(test), test, ["m"]) == pytest.approx(1.0)
    assert latent_cosine_similarity(SharedLatent(test, -1.0), test, ["m", "s"]) == pytest.approx(-1.0)
    model = build_model("mvae", MODALITIES, z_dim=4, hidden=(16,))
    value = latent_cosine_similarity(model, test, ["t"])
    assert -1.0 <= value <= 1.0
    assert latent_cosine_similarity(model, test, ["m", "s", "t"]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- subset likelihoods
NOISE = 0.5  # z ~ N(0, 1), a|z ~ N(z, NOISE^2), b|z ~ N(z, NOISE^2)
A, B = Modality("a", (1,), "gaussian"), Modality("b", (1,), "gaussian")


class ExactPosterior(nn.Module):
    """(loc, raw scale) of the exact posterior q(z|observed) of the linear-Gaussian model."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        precision = 1 + len(xs) / NOISE**2
        loc = sum(xs) / NOISE**2 / precision
        raw = math.log(math.expm1(precision**-0.5 - 1e-4))
        return torch.cat([loc, torch.full_like(loc, raw)], dim=1)


class LinearGaussian(ZooModel):
    def __init__(self) -> None:
        self.q = {
            s: GaussianEncoder(ExactPosterior(), cond_var=list(s)) for s in (("a",), ("b",), ("a", "b"))
        }
        p_a, p_b = decoder_for(A, nn.Identity(), scale=NOISE), decoder_for(B, nn.Identity(), scale=NOISE)
        joint = self.q[("a", "b")]
        loss = (-(p_a.log_prob() + p_b.log_prob()).expectation(joint)).mean()
        generative = p_a * p_b * standard_normal("z", 1)
        super().__init__(loss, [*self.q.values(), p_a, p_b], {"a": A, "b": B}, generative, joint)

    def inference_for(self, given):
        return self.q[tuple(m for m in self.modalities if m in given)]


def test_subset_likelihood_is_exact_with_the_exact_posterior():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 1, generator=g)
    a, b = z + NOISE * torch.randn(200, 1, generator=g), z + NOISE * torch.randn(200, 1, generator=g)
    data = MultimodalDataset("lin", {"a": a, "b": b}, {"a": A, "b": B})
    model = LinearGaussian()
    marginal = torch.distributions.Normal(0.0, math.sqrt(1 + NOISE**2))
    covariance = torch.tensor([[1 + NOISE**2, 1.0], [1.0, 1 + NOISE**2]])
    joint = torch.distributions.MultivariateNormal(torch.zeros(2), covariance)
    exact = {
        ("a",): float(marginal.log_prob(a).mean()),
        ("b",): float(marginal.log_prob(b).mean()),
        ("a", "b"): float(joint.log_prob(torch.cat([a, b], 1)).mean()),
    }
    for given, value in exact.items():
        result = subset_log_likelihood(model, data, given, k=5, batch_size=64)
        assert result["elbo"] == pytest.approx(value, abs=1e-3), given
        assert result["iwae_5"] == pytest.approx(value, abs=1e-3), given
        assert result["examples"] == 200


def test_subset_likelihood_on_a_tiny_mvae(data):
    test = make_data(60, seed=2, binarize="dynamic")
    model = build_model("mvae", MODALITIES, z_dim=4, hidden=(16,))
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    results = {
        s: subset_log_likelihood(model, test, s, k=8, batch_size=25, seed=3) for s in nonempty_subsets("mst")
    }
    assert torch.equal(torch.rand(2), expected)  # the global random state is left alone
    for r in results.values():
        assert math.isfinite(r["elbo"]) and r["iwae_8"] >= r["elbo"]
    # the same seed draws the same binarisation and samples; the full set is the usual estimate
    assert subset_log_likelihood(model, test, ["m"], k=8, batch_size=25, seed=3) == results[("m",)]
    full = evaluate_log_likelihood(model, test, k=8, batch_size=25, seed=3)
    assert results[("m", "s", "t")]["elbo"] == pytest.approx(full["elbo"])
    # log p(m) > log p(m, t): the text's categorical likelihood (8 symbols of 17) is far below 1
    assert results[("m",)]["iwae_8"] > results[("m", "t")]["iwae_8"] + 10


def test_evaluate_multimodal_and_table(data, classifiers):
    train, test = data
    models = {name: build_model(name, MODALITIES, z_dim=4, hidden=(16,)) for name in ("mvae", "jmvae-kl")}
    for model in models.values():
        for batch in train.batches(100):
            model.train_step(batch)
    results = {
        name: evaluate_multimodal(model, train, test, classifiers, n_test=40, n_train=100, n_joint=40, k=3)
        for name, model in models.items()
    }
    r = results["mvae"]
    assert len([k for k in r if k.startswith("coherence[") and "->" in k]) == 21
    assert {"coherence[mean]", "joint_coherence", "fd[->m]", "fd[t->s]", "fd[m,t->s]", "probe[m,s,t]"} <= set(
        r
    )
    assert {"cosine[m]", "cosine[s,t]", "elbo[m,s,t]", "iwae[m]", "iwae[s,t]"} <= set(r)
    assert "cosine[m,s,t]" not in r and "fd[m->m]" not in r and "fd[m->t]" not in r
    assert all(0 <= v <= 1 for k, v in r.items() if k.startswith(("coherence", "joint", "probe")))
    assert all(math.isfinite(v) for v in r.values())
    assert all(r[f"iwae[{s}]"] >= r[f"elbo[{s}]"] for s in ("m", "s", "t", "m,s,t"))
    only = evaluate_multimodal(models["mvae"], train, test, classifiers, n_test=40, metrics=["cosine"])
    assert only == {k: v for k, v in r.items() if k.startswith("cosine")}
    table = multimodal_table(results, keys=["joint_coherence", "probe", "fd[m->s]"])
    lines = table.splitlines()
    assert lines[0].startswith("| model | joint_coherence | probe[m] | probe[s] |") and "fd[m->s]" in lines[0]
    assert len(lines) == 4 and lines[2].startswith("| mvae |") and lines[3].startswith("| jmvae-kl |")
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_multimodal(models["mvae"], train, test, classifiers, metrics=["fid"])


def test_grids_for_two_and_three_modalities(data):
    batch = data[1].first(6)
    assert decode_text(text(["one", "seven"]), MODALITIES["t"]) == ["one", "seven"]
    label = Modality("y", (3,), "categorical", labels=("cat", "dog", "cow"))
    assert decode_text(torch.tensor([[0.1, 0.7, 0.2]]), label) == ["dog"]
    for names in (("m", "t"), ("m", "s", "t")):
        model = build_model("mvae", {n: MODALITIES[n] for n in names}, z_dim=4, hidden=(16,))
        fig = cross_modal_grid(model, batch, ["t"], n=4)
        assert isinstance(fig, Figure) and len(fig.axes) == 1 + len(names)
        strings = [t.get_text() for t in fig.axes[0].texts]
        assert strings == [WORDS[int(c)] for c in data[1].labels[:4]]  # the real text, decoded
        generated = [t.get_text() for t in fig.axes[-1].texts]
        assert len(generated) == 4 and all(set(s) <= set(ALPHABET) and len(s) <= 8 for s in generated)
        grids = subset_grids(model, batch, n=3)
        assert list(grids) == nonempty_subsets(names)
        fig.savefig(io.BytesIO(), format="png")
        grids[tuple(names)].savefig(io.BytesIO(), format="png")
    with pytest.raises(KeyError, match="unknown modality"):
        cross_modal_grid(model, batch, ["x"])


def test_one_classifier_or_a_list_in_place_of_the_mapping_is_refused_naming_the_mapping(data, classifiers):
    """``coherence(model, test, classifier, ...)`` failed with "argument of type 'ModalityClassifier'
    is not iterable"; a list printed the whole network in a KeyError."""
    _, test = data
    for wrong in (classifiers["m"], [classifiers["m"]]):
        with pytest.raises(TypeError, match=r"classifiers map each modality to its own, e\.g\. \{'m': one\}"):
            coherence(Oracle(test), test, wrong, ["m"], "s")
        with pytest.raises(TypeError, match=r"classifiers map each modality"):
            joint_coherence(Oracle(test), wrong, n=10)


def test_multimodal_metrics_refuse_a_classifier_keyed_by_another_modality_and_check_k_and_metrics():
    """A classifier of 'm' keyed 's' failed with "variable 'm' has shape (40, 3, 32, 32), expected
    (batch, 1, 8, 8)"; ``metrics="coherence"`` was read letter by letter; ``k=0`` gave NaN for every
    subset likelihood instead of an error."""
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.evaluation import coherence, evaluate_multimodal, train_classifier
    from pixyz_zoo.models import MoPoE

    train = load_dataset("trimodal-digits").subset(slice(0, 40))
    test = load_dataset("trimodal-digits", "test").subset(slice(0, 20))
    model = MoPoE(train.modalities, z_dim=2, hidden=[8])
    clf = train_classifier(train, "m", None, epochs=0, hidden=[8])
    with pytest.raises(
        ValueError, match=r"classifiers\['s'\] reads the modality 'm', not 's'.*\{'m': \.\.\.\}"
    ):
        coherence(model, test, {"s": clf}, ["t"], "s")
    named_alone = evaluate_multimodal(model, train, test, {"m": clf}, metrics="coherence", n_test=10)
    assert named_alone == evaluate_multimodal(
        model, train, test, {"m": clf}, metrics=["coherence"], n_test=10
    )
    with pytest.raises(
        ValueError, match=r"the number of importance samples k must be an integer >= 1, got 0"
    ):
        evaluate_multimodal(model, train, test, {"m": clf}, metrics=["likelihood"], k=0)
    for wrong, message in (
        ({"lr": 0}, r"lr, the classifier's learning rate, must be a number > 0"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
        ({"hidden": 8}, r"hidden is a list of hidden-layer widths"),
    ):
        with pytest.raises((ValueError, TypeError), match=message):
            train_classifier(train, "m", None, epochs=1, **wrong)
