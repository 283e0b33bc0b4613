"""The Python API's arguments as a new user passes them: the dataset where its modalities belong, a
DataLoader or a batch where a dataset belongs, a tensor where a batch belongs. Each is refused with
what to pass instead (they failed deep inside with AttributeError, "dictionary update sequence
element #0 has length 3" or "Tensor.__contains__ only supports Tensor or scalar")."""

from __future__ import annotations

import math
import re

import pytest
import torch

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.evaluation import evaluate_log_likelihood
from pixyz_zoo.models import MODELS, VAE
from pixyz_zoo.training import CheckpointError, Trainer


@pytest.fixture(scope="module")
def trimodal():
    return load_dataset("trimodal-digits", "test")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_refuses_a_dataset_in_place_of_its_modalities(name, trimodal):
    with pytest.raises(TypeError, match=r"not on the MultimodalDataset itself: pass its \.modalities"):
        MODELS[name](trimodal)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_refuses_tensors_in_place_of_modalities(name, trimodal):
    with pytest.raises(TypeError, match=r"modalities must be a dict of pixyz_zoo\.Modality.*\['Tensor'\]"):
        MODELS[name](trimodal.first(2))


@pytest.fixture
def vae(digits_train):
    return VAE(digits_train.modalities, z_dim=2, hidden=[8])


def test_the_trainer_refuses_a_dataloader(vae, digits_train):
    loader = torch.utils.data.DataLoader(digits_train.first(8)["x"])
    with pytest.raises(TypeError, match="train_data must be a MultimodalDataset, got DataLoader: load one"):
        Trainer(vae, loader, digits_train)
    with pytest.raises(TypeError, match="test_data must be a MultimodalDataset, got DataLoader"):
        Trainer(vae, digits_train, loader)


def test_the_evaluation_refuses_a_batch(vae, digits_train):
    with pytest.raises(TypeError, match="data must be a MultimodalDataset, got dict"):
        evaluate_log_likelihood(vae, digits_train.first(4), k=2)


def test_generation_refuses_a_tensor_in_place_of_a_batch(vae, digits_train):
    with pytest.raises(
        TypeError, match=r"a batch must be a dict keyed by variable name, got Tensor; e.g. \{'x'"
    ):
        vae.reconstruct(digits_train.first(4)["x"])


def test_a_trainer_refuses_to_overwrite_the_checkpoint_of_another_run(digits_train, tmp_path):
    """A second Trainer on the same run_dir overwrote the first run's checkpoint at its first epoch."""
    small = digits_train.subset(slice(0, 64))
    first = Trainer(
        VAE(small.modalities, z_dim=2, hidden=[8]), small, run_dir=tmp_path, progress=False, epochs=1
    )
    first.fit()
    saved = (tmp_path / "checkpoint.pt").read_bytes()
    other = Trainer(
        VAE(small.modalities, z_dim=3, hidden=[8]), small, run_dir=tmp_path, progress=False, epochs=1
    )
    with pytest.raises(
        CheckpointError, match=r"already holds a checkpoint.*trainer\.resume\(\) before fit\(\)"
    ):
        other.fit()
    assert (tmp_path / "checkpoint.pt").read_bytes() == saved
    first.epochs = 2
    assert len(first.fit()) == 2  # the trainer that wrote it goes on
    again = Trainer(
        VAE(small.modalities, z_dim=2, hidden=[8]), small, run_dir=tmp_path, progress=False, epochs=3
    )
    assert len(again.resume().fit()) == 3  # so does one that resumed it


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_sampling_refuses_a_count_that_is_not_a_positive_integer(vae, n):
    """``sample(0)`` gave one sample (Pixyz's default for batch_n=0), ``sample(-1)`` a RuntimeError."""
    with pytest.raises(ValueError, match=r"the number of samples n must be an integer >= 1"):
        vae.sample(n)


def test_one_modality_may_be_named_alone():
    """``given="y1"`` was read as ["y", "1"] (a list of its letters): "unknown modality"."""
    from pixyz_zoo.models import MoPoE

    data = load_dataset("attribute-digits", "test")
    model = MoPoE(data.modalities, z_dim=2, hidden=[8])
    batch = data.first(3)
    out = model.generate(batch, "y1", targets="x")
    assert list(out) == ["x"] and out["x"].shape == (3, *data.modalities["x"].shape)
    # so do the evaluations and the figures (they refused the string, as "write ['y1']")
    from matplotlib.figure import Figure

    from pixyz_zoo.evaluation import conditional_log_likelihood, subset_log_likelihood
    from pixyz_zoo.plots import cross_modal_grid

    small = data.subset(slice(0, 4))
    assert isinstance(cross_modal_grid(model, batch, "y1", targets="x", n=3), Figure)
    torch.manual_seed(0)
    by_name = conditional_log_likelihood(model, small, "x", "y1", n_samples=2)
    torch.manual_seed(0)
    assert by_name == conditional_log_likelihood(model, small, "x", ["y1"], n_samples=2)
    assert subset_log_likelihood(model, small, "y1", k=2) == subset_log_likelihood(model, small, ["y1"], k=2)


def test_the_trainer_refuses_an_empty_split(vae, digits_train):
    """An empty training split failed with ZeroDivisionError; an empty test split after an epoch."""
    empty, some = digits_train.subset(slice(0, 0)), digits_train.subset(slice(0, 8))
    with pytest.raises(ValueError, match="train_data 'digits' holds no example"):
        Trainer(vae, empty, some)
    with pytest.raises(
        ValueError, match=r"test_data 'digits' holds no example: give it some \(test_data=None"
    ):
        Trainer(vae, some, empty)


@pytest.mark.parametrize("k", [0, 2.5])
def test_the_likelihood_refuses_a_sample_count_that_is_not_a_positive_integer(vae, digits_train, k):
    """``k=2.5`` failed inside with "repeat() takes 1 positional argument but 4 were given"."""
    with pytest.raises(ValueError, match=r"the number of importance samples k must be an integer >= 1"):
        evaluate_log_likelihood(vae, digits_train.subset(slice(0, 4)), k=k)


def test_every_count_argument_refuses_a_fraction_naming_itself(vae, digits_train):
    """A count given as 2.5 failed deep inside (``repeat``, ``range``, slicing) or was truncated;
    each is refused by the one check of counts, naming the argument."""
    from pixyz_zoo.evaluation.amortization import amortization_gaps, optimal_gaussian, refinement_curve
    from pixyz_zoo.evaluation.conditional import conditional_log_likelihood_batch
    from pixyz_zoo.evaluation.latents import kl_per_dimension
    from pixyz_zoo.losses.iwae import StratifiedIWAE
    from pixyz_zoo.models import IterativeVAE

    data = digits_train.subset(slice(0, 4))
    batch = data.first(4)
    calls = {
        "the number of samples k per bound": lambda: refinement_curve(vae, data, steps=1, k=2.5),
        "max_steps": lambda: optimal_gaussian(vae, batch, max_steps=2.5),
        "elbo_samples": lambda: amortization_gaps(vae, data, elbo_samples=2.5),
        "batch_size": lambda: kl_per_dimension(vae, data, batch_size=2.5),
        "the number of samples N": lambda: conditional_log_likelihood_batch(
            vae, batch, "x", [], n_samples=2.5
        ),
        "the number of importance samples k": lambda: StratifiedIWAE(None, vae.prior, [vae.p_x], k=2.5),
        r"check_every \(steps between reads of the loss\)": lambda: Trainer(vae, data, check_every=2.5),
        "the number of samples n_samples": lambda: vae.sample_latents(batch, ["x"], n_samples=2.5),
    }
    for what, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{what} must be an integer >= 1, got 2\.5"):
            call()
    # a model's count option is checked as build_model checks it, naming the model and the option
    with pytest.raises(
        ValueError, match=r"^model 'iterative-vae': invalid option value\(s\): samples=2\.5 \(expected"
    ):
        IterativeVAE(digits_train.modalities, z_dim=2, hidden=[8], samples=2.5)


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"epochs": 2.5}, "epochs must be an integer >= 0, got 2.5"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"warmup_epochs": -1}, "warmup_epochs must be a number >= 0, got -1"),
        ({"warmup_epochs": float("nan")}, "warmup_epochs must be a number >= 0, got nan"),
    ],
)
def test_the_trainer_refuses_settings_the_command_line_refuses(vae, digits_train, setting, message):
    """``Trainer(epochs=2.5)`` trained 3 epochs, ``batch_size=2.5`` failed at fit() with "'float'
    object cannot be interpreted as an integer", a negative seed or warm-up was taken
    (``pixyz-zoo train`` refused them all)."""
    with pytest.raises(ValueError, match=f"^{message}$"):
        Trainer(vae, digits_train.subset(slice(0, 8)), progress=False, **setting)


def test_decoding_refuses_latents_the_model_does_not_have(vae, digits_train):
    """``decode({"w": codes}, ...)`` ignored ``w`` and decoded a latent drawn from the prior."""
    with pytest.raises(KeyError, match=r"decode takes the latents of VAE, \['z'\]; got \['w'\]"):
        vae.decode({"w": torch.zeros(3, 2)}, ["x"])
    with pytest.raises(KeyError, match=r"got \[\]"):
        vae.decode({}, ["x"])
    assert vae.decode({"z": torch.zeros(3, 2)}, ["x"])["x"].shape == (3, 1, 8, 8)


@pytest.mark.parametrize("shape", [(3, 5), (2,)])
def test_decoding_names_a_latent_of_another_size(vae, shape):
    """It failed with "mat1 and mat2 shapes cannot be multiplied (3x5 and 2x8)" or an IndexError."""
    with pytest.raises(
        ValueError, match=rf"latent 'z' has shape \({shape[0]},.*VAE gives it shape \(batch, 2\)"
    ):
        vae.decode({"z": torch.zeros(shape)}, ["x"])


def test_a_hierarchical_model_decodes_from_its_top_latent_alone(trimodal):
    """z1 is drawn from p(z1|z2); a z2 of another size is named, not z1."""
    from pixyz_zoo.models import build_model

    model = build_model("hierarchical-jmvae", trimodal.select(["m", "t"]).modalities, z_dim=2, hidden=[8])
    assert model.latents == ["z1", "z2"]
    assert model.decode({"z2": torch.zeros(4, 2)}, ["m"])["m"].shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match=r"^latent 'z2' has shape \(4, 3\); HierarchicalJMVAE gives it"):
        model.decode({"z2": torch.zeros(4, 3)}, ["m"])


def test_generating_from_the_prior_without_a_count_says_what_to_pass(vae, digits_train):
    with pytest.raises(
        ValueError, match=r"needs the number of samples n, e\.g\. model\.generate\(n=16\).*given="
    ):
        vae.generate(digits_train.first(4))


def test_the_trainer_refuses_a_callback_or_run_dir_it_could_not_use_before_training(
    vae, digits_train, tmp_path
):
    """A callback of one argument or a number failed after the first epoch ("takes 1 positional
    argument but 2 were given", "'int' object is not callable"); a run_dir that is a file failed at
    the first checkpoint with "[Errno 17] File exists"."""
    with pytest.raises(TypeError, match=r"called as callback\(trainer, record\).*cannot take these two"):
        Trainer(vae, digits_train, callback=lambda trainer: None)
    with pytest.raises(TypeError, match=r"callback must be a function .* got int"):
        Trainer(vae, digits_train, callback=3)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"run_dir .*a_file is a file, not a directory"):
        Trainer(vae, digits_train, run_dir=tmp_path / "a_file")
    seen = []
    Trainer(
        vae, digits_train.subset(slice(0, 20)), epochs=1, progress=False, callback=lambda *a: seen.append(a)
    ).fit()
    assert len(seen) == 1 and seen[0][1]["epoch"] == 1


def test_a_dataset_where_a_batch_belongs_points_to_dataset_first(trimodal):
    """``cross_modal_grid(model, dataset, ...)`` indexed the dataset by a modality's name and failed
    with "a dataset is indexed by one example's position, got str"; a model's own batch check named
    only the dict it wanted."""
    from pixyz_zoo.models import MoPoE
    from pixyz_zoo.plots import cross_modal_grid

    model = MoPoE(trimodal.modalities, z_dim=2, hidden=[8])
    with pytest.raises(TypeError, match=r"dataset\['m'\]: a dataset is not a batch.*dataset\.first\(n\)"):
        cross_modal_grid(model, trimodal, ["m"])
    with pytest.raises(TypeError, match=r"got MultimodalDataset.*\(dataset\.first\(n\) is a batch"):
        model.reconstruct(trimodal)


@pytest.mark.parametrize(
    "setting, named",
    [({"batch_size": 50}, "batch_size=50 (the run's: 64)"), ({"seed": 3}, "seed=3 (the run's: 0)")],
)
def test_trainer_resume_refuses_settings_that_differ_from_the_run(digits_train, tmp_path, setting, named):
    """A trainer of batch 50 resumed a run of batch 64 and went on with batch 50 (`train --resume`
    refuses a different --batch-size); the run then matched neither setting."""
    data = digits_train.subset(slice(0, 128))
    made = {"epochs": 1, "batch_size": 64, "seed": 0, "progress": False, "run_dir": tmp_path}
    Trainer(VAE(data.modalities, z_dim=2, hidden=[8]), data, **made).fit()
    other = Trainer(VAE(data.modalities, z_dim=2, hidden=[8]), data, **{**made, "epochs": 2, **setting})
    with pytest.raises(CheckpointError, match=rf"continues only as it was made.*{re.escape(named)}"):
        other.resume()
    same = Trainer(VAE(data.modalities, z_dim=2, hidden=[8]), data, **{**made, "epochs": 2})
    assert [record["epoch"] for record in same.resume().fit()] == [1, 2]


def test_a_model_class_checks_its_options_as_build_model_does(digits_train):
    """``VAE(modalities, z_dim=2.5)`` failed inside torch ("empty(): argument 'size' ... must be tuple of
    ints"), ``hidden=32`` with "'int' object is not iterable", ``zdim=3`` as an unexpected keyword."""
    from pixyz_zoo.models import BetaVAE

    modalities = digits_train.modalities
    with pytest.raises(
        ValueError, match=r"model 'vae': invalid option value\(s\): z_dim=2\.5 \(expected an int >= 1\)"
    ):
        VAE(modalities, z_dim=2.5)
    with pytest.raises(ValueError, match=r"hidden=32 \(expected a list of ints >= 1\)"):
        VAE(modalities, hidden=32)
    with pytest.raises(TypeError, match=r"model 'vae' has no option\(s\) \['zdim'\]; its options are"):
        VAE(modalities, zdim=3)
    with pytest.raises(ValueError, match=r"model 'beta-vae': .*beta=-1"):
        BetaVAE(modalities, beta=-1)

    class WithAnOptionOfItsOwn(VAE):  # a subclass of one's own is built as it is written
        def __init__(self, modalities, extra: int = 1, **options):
            super().__init__(modalities, **options)
            self.extra = extra

    assert WithAnOptionOfItsOwn(modalities, extra=5, z_dim=2, hidden=[8]).extra == 5


def test_encoding_from_no_modality_points_to_the_prior(trimodal):
    """``encode(batch, given=[])`` of a multimodal model returned one prior mean of shape (1, z),
    whatever the batch's size."""
    from pixyz_zoo.models import MoPoE

    model = MoPoE(trimodal.modalities, z_dim=2, hidden=[8])
    with pytest.raises(ValueError, match=r"given=\[\] names none.*model\.sample_latents\(None, \[\], n=N\)"):
        model.encode(trimodal.first(5), given=[])
    assert model.sample_latents(None, [], n=5)["z"].shape == (5, 2)


@pytest.mark.parametrize("sample_latent", [True, False])
def test_a_count_of_prior_draws_is_refused_beside_a_given_modality(trimodal, sample_latent):
    """``generate(batch, given=["m"], n=3)`` of a batch of 5 ignored ``n`` and generated 5 rows. An
    ``n`` that is the batch's size stays allowed (a loop over subsets, the empty one included)."""
    from pixyz_zoo.models import MoPoE

    model = MoPoE(trimodal.modalities, z_dim=2, hidden=[8])
    batch = trimodal.first(5)
    with pytest.raises(ValueError, match=r"n=3 is the number of draws .*\[.m.\].*5 here.*first\(n\)"):
        model.generate(batch, given=["m"], n=3, sample_latent=sample_latent)
    with pytest.raises(ValueError, match=r"n=3 is the number of draws from the prior"):
        model.sample_latents(batch, ["m"], n=3)
    assert model.generate(trimodal.first(3), given=["m"], sample_latent=sample_latent)["t"].shape[0] == 3
    assert model.generate(batch, given=["m"], n=5, sample_latent=sample_latent)["t"].shape[0] == 5


def test_reconstructing_a_batch_that_lacks_a_modality_names_the_cross_modal_generation(trimodal):
    """reconstruct takes no ``given``, but its message said "name only what it holds as given"."""
    from pixyz_zoo.models import MoPoE, build_model

    model = MoPoE(trimodal.modalities, z_dim=2, hidden=[8])
    batch = trimodal.first(4)
    with pytest.raises(
        KeyError, match=r"lacks \['s', 't'\].*from those it holds: model\.generate\(batch, given=\['m'\]\)"
    ):
        model.reconstruct({"m": batch["m"]})
    assert model.generate({"m": batch["m"]}, given=["m"])["t"].shape[0] == 4
    with pytest.raises(KeyError, match=r"lacks \['m', 's', 't'\] \(it holds \['x'\]\).*modality name\"$"):
        model.reconstruct({"x": batch["m"]})
    translation = build_model("translation", trimodal.modalities, z_dim=2, hidden=[8])  # m, s -> t
    with pytest.raises(KeyError, match=r"lacks \['s'\].*keyed by modality name\"$"):
        translation.reconstruct({"m": batch["m"]})


def test_a_translation_model_given_nothing_it_reads_says_it_has_no_prior(trimodal):
    """Its advice was to train a translation model with observed=[], which is refused."""
    from pixyz_zoo.models import build_model

    model = build_model("translation", trimodal.modalities, z_dim=2, hidden=[8])  # m, s -> t
    batch = trimodal.first(3)
    for given in ([], ["t"]):
        with pytest.raises(ValueError, match=r"Give them \(it has no prior to generate from without them\)"):
            model.generate(batch, given=given)
    with pytest.raises(ValueError, match=r"or train a translation model with observed=\['m'\]"):
        model.generate(batch, given=["m", "t"])


def test_likelihood_bounds_refuse_no_observed_modality_and_take_one_named_alone():
    """``observed=[]`` bounded the likelihood of nothing (a negative KL, reported as a result), and
    ``observed="m0"`` was read as the modalities 'm' and '0'."""
    from pixyz_zoo.models import MoPoE

    data = load_dataset("polydigits", "test").select(["m0", "m1"]).subset(slice(0, 6))
    model = MoPoE(data.modalities, z_dim=2, hidden=[8])
    with pytest.raises(ValueError, match=r"observed=\[\] names no modality.*observed=\['m0'\]"):
        evaluate_log_likelihood(model, data, k=2, observed=[])
    named_alone = evaluate_log_likelihood(model, data, k=2, observed="m0", given="m0")
    assert named_alone == evaluate_log_likelihood(model, data, k=2, observed=["m0"], given=["m0"])


def test_conditional_likelihoods_name_the_form_of_target_and_pairs(trimodal):
    """A list as the target failed with "unhashable type: 'list'", a dict of pairs with "not enough
    values to unpack (expected 2, got 1)"."""
    from pixyz_zoo.evaluation.conditional import conditional_log_likelihood, conditional_log_likelihood_table
    from pixyz_zoo.models import MoPoE

    data = trimodal.subset(slice(0, 6))
    model = MoPoE(trimodal.modalities, z_dim=2, hidden=[8])
    with pytest.raises(
        TypeError, match=r"target is the one modality .*got \['m'\].*_table\(model, data, pairs\)"
    ):
        conditional_log_likelihood(model, data, ["m"], ["s"], n_samples=2)
    form = r"pairs is a list of \(target, given\) pairs, e\.g\. \[\('x', \['w'\]\)"
    with pytest.raises(TypeError, match=form + r".*got a dict"):
        conditional_log_likelihood_table(model, data, pairs={"m": ["s"]}, n_samples=2)
    with pytest.raises(TypeError, match=form + r".*got one pair alone: write \[\('m', \['s'\]\)\]"):
        conditional_log_likelihood_table(model, data, pairs=("m", ["s"]), n_samples=2)
    table = conditional_log_likelihood_table(model, data, pairs=[("m", "s"), ("m", ["m", "s"])], n_samples=2)
    assert list(table) == ["log p(m|s)", "log p(m|m,s)"]


def test_an_unknown_registered_name_names_the_nearest_ones():
    """``build_model("VAE", ...)`` and ``load_dataset("mnist10k")`` listed every name but not the
    one meant."""
    from pixyz_zoo.experiments import check_experiment
    from pixyz_zoo.models import build_model

    with pytest.raises(
        KeyError, match=r"unknown model 'VAE' \(did you mean 'vae'\?\); available: annealed-vae"
    ):
        build_model("VAE", {})
    with pytest.raises(
        KeyError, match=r"unknown dataset 'mnist10k' \(did you mean 'mnist-10k' or 'mnist'\?\)"
    ):
        load_dataset("mnist10k")
    with pytest.raises(KeyError, match=r"unknown dataset 'cifar'; available: attribute-digits"):
        load_dataset("cifar")
    with pytest.raises(KeyError, match=r"unknown experiment 'beta_vae' \(did you mean 'beta-vae'\?\)"):
        check_experiment("beta_vae")


def test_a_model_built_in_float64_takes_float32_data():
    """A model built after ``torch.set_default_dtype(torch.float64)`` (or moved with ``.double()``),
    given data loaded as float32, failed with "mat1 and mat2 must have the same dtype"."""
    from pixyz_zoo.models import MoPoE

    data = load_dataset("trimodal-digits", "test").subset(slice(0, 8))
    assert data.tensors["m"].dtype == torch.float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = MoPoE(data.modalities, z_dim=2, hidden=[8])
    finally:
        torch.set_default_dtype(default)
    batch = data.first(4)
    assert math.isfinite(model.train_step(batch))
    assert model.reconstruct(batch)["m"].dtype == torch.float64
    assert model.generate(batch, given=["t"], targets=["s"])["s"].shape == (4, 3, 32, 32)
    assert model.encode(batch, given=["m"])["z"].dtype == torch.float64
    assert math.isfinite(evaluate_log_likelihood(model, data, k=2)["iwae_2"])


def test_decode_without_targets_decodes_what_generate_would(trimodal):
    """``model.decode(model.encode(batch))`` failed with "missing 1 required positional argument:
    'targets'"; MFM's decode read a target named alone letter by letter."""
    from pixyz_zoo.models import MoPoE, build_model

    model = MoPoE(trimodal.modalities, z_dim=2, hidden=[8])
    latents = model.encode(trimodal.first(3))
    assert sorted(model.decode(latents)) == ["m", "s", "t"]
    labelled = load_dataset("multimodal-sequences", "test")
    mfm = build_model("mfm", labelled.modalities, z_dim=2, style_dim=2, hidden=[8])
    codes = mfm.encode(labelled.first(3))
    assert sorted(mfm.decode(codes)) == sorted(mfm.default_targets())
    assert list(mfm.decode(codes, "y")) == ["y"]
