"""``pixyz-zoo``: list, train, evaluate and draw the zoo's models from the command line.

pixyz-zoo list
pixyz-zoo train vae --dataset digits --epochs 10 --out runs/vae
pixyz-zoo train --resume runs/vae --epochs 20
pixyz-zoo evaluate runs/vae --iw-samples 1000
pixyz-zoo graph vae --out vae.png
pixyz-zoo reproduce beta-vae --quick

``train --train-examples N --test-examples M`` (not listed by ``--help``) keeps only the first N / M
examples of each split: a pipeline check in seconds, as the tests run every model on every dataset.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pixyz_zoo.checks import check_count, did_you_mean, fold_name, nearest_names
from pixyz_zoo.datasets import BINARIZE_CHOICES, DATA_ROOT_ENV, DATASETS
from pixyz_zoo.models import MODELS, model_options
from pixyz_zoo.training import PRECISIONS

#: Default importance samples of the evaluation, as ``pixyz_zoo.runs.IW_SAMPLES`` (not imported
#: from there: ``runs`` loads the whole evaluation code, which ``pixyz-zoo list`` does not need).
IW_SAMPLES = 500


#: the data root's help, one wording for every command that reads data
DATA_ROOT_HELP = f"dataset folder (default ${DATA_ROOT_ENV} or ./data)"


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with a Python literal value (``z_dim=2``, ``hidden=[256,256]``, ``arch=conv``)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"model options are key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
        if raw.strip()[:1] in "[{(":  # bare names inside: groups=[[m],[s,t]], likelihood_weights={m:2}
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(BARE_NAME.sub(lambda m: repr(m.group()), raw))
    return key.strip().replace("-", "_"), value


#: a name written without quotes inside a list or dict value (not True, False or None)
BARE_NAME = re.compile(r"(?<![\w'\"])(?!(?:True|False|None)(?![\w'\"]))[A-Za-z_]\w*(?![\w'\"])")


def split_option_value(argv: list[str]) -> str | None:
    """The problem when the shell split an option's value at a space (``-o hidden=[256, 256]``
    unquoted: argparse would report only the stray ``256]``); None when there is none."""

    def unclosed(text: str) -> int:
        return sum(text.count(c) for c in "[{(") - sum(text.count(c) for c in "]})")

    for at, (flag, value) in enumerate(zip(argv, argv[1:], strict=False)):
        if flag in ("-o", "--option") and unclosed(value) > 0:
            for end in range(at + 2, len(argv)):
                whole = " ".join(argv[at + 1 : end + 1])
                if unclosed(whole) <= 0:
                    return (
                        f"the value of {flag} {value} ends before its brackets close: the shell split it "
                        f"at a space. Quote it, -o '{whole}', or leave the spaces out"
                    )
    return None


def registered(kind: str, names: Iterable[str]) -> Callable[[str], str]:
    """An argparse type for a registered ``kind`` of name (model, dataset, experiment): a name written
    in capitals or with ``_`` for ``-`` is taken as the registered one (``VAE``, ``beta_vae``); an
    unknown one is refused with the nearest registered names."""
    known = sorted(names)

    def convert(text: str) -> str:
        close = [text] if text in known else nearest_names(text, known)
        if close and fold_name(close[0]) == fold_name(text):
            return close[0]
        hint = f"; {did_you_mean(text, known)}" if close else ""
        raise argparse.ArgumentTypeError(
            f"unknown {kind} {text!r}{hint} (`pixyz-zoo list {kind}s` shows every {kind})"
        )

    convert.__name__ = kind
    return convert


def parse_names(text: str) -> list[str]:
    """``m,s``: comma-separated modality names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected modality names separated by commas (m,s), got {text!r}")
    return names


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--option/-o KEY=VALUE``: any option of the model, one way for every command that builds one."""
    parser.add_argument(
        "--option",
        "-o",
        type=parse_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any model option, e.g. -o hidden=[256,256] (see `pixyz-zoo list`)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixyz-zoo", description="Deep generative models written as probabilistic programs with Pixyz."
    )
    from pixyz_zoo import __version__

    parser.add_argument("--version", action="version", version=f"pixyz-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="list models, datasets and experiments")
    listing.add_argument(
        "what",
        nargs="?",
        help="models, datasets or experiments only, or the entries of one name (e.g. vae, polymnist)",
    )

    train = sub.add_parser("train", help="train a model into a run directory, then evaluate it")
    # Settings that define a run default to None here, so that --resume can tell the ones given
    # (refused when they differ from the run's) from the ones left out; TRAIN_DEFAULTS fills them.
    # Each argument's dest is the name of a RunSpec setting (pixyz_zoo.run_spec).
    train.add_argument(
        "model",
        nargs="?",
        type=registered("model", MODELS),
        choices=sorted(MODELS),
        help="the model to train (see `pixyz-zoo list`); with --resume it may be left out",
    )
    train.add_argument(
        "--dataset",
        type=registered("dataset", DATASETS),
        choices=sorted(DATASETS),
        help="dataset (default digits)",
    )
    train.add_argument(
        "--modalities",
        type=parse_names,
        default=None,
        metavar="A,B",
        help="train on these modalities of the dataset only (default: all), e.g. --modalities m,s",
    )
    train.add_argument(
        "--epochs", type=int, default=None, help="total epochs (default 30; --resume: as before)"
    )
    train.add_argument(
        "--batch-size",
        type=int,
        help="minibatch size per process (default 64; under torchrun --nproc_per_node=N the global "
        "batch is N times this)",
    )
    train.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the model's)")
    train.add_argument("--clip-grad-norm", type=float, default=None, help="clip the gradient norm")
    train.add_argument("--warmup-epochs", type=float, help="KL warm-up length in epochs (default 0: none)")
    train.add_argument("--z-dim", type=int, default=None, help="latent size (model option z_dim)")
    train.add_argument("--arch", choices=["mlp", "conv"], default=None, help="network preset")
    add_model_options(train)
    train.add_argument(
        "--device", help="auto (CUDA when present; the default), cpu, cuda or cuda:N (--resume: as before)"
    )
    train.add_argument("--seed", type=int, help="seed of initialisation, data order and sampling (default 0)")
    train.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="fp32 (the default), or bf16: mixed precision, each training step's forward pass and loss "
        "under bfloat16 autocast (parameters, optimiser state and the test loss stay float32); "
        "--resume: as before, or changed",
    )
    train.add_argument(
        "--check-every",
        type=int,
        metavar="N",
        help="steps between reads of the training loss on the host, where a NaN/inf or diverging loss "
        "stops training (default 50; the numbers do not depend on it; --resume: as before, or changed)",
    )
    train.add_argument(
        "--out", type=Path, default=None, help="run directory (default runs/MODEL-DATASET-sSEED)"
    )
    train.add_argument(
        "--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted run"
    )
    train.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    train.add_argument(  # None when left out: a resume then keeps the run's own setting
        "--download", action="store_true", default=None, help="let torchvision download missing files"
    )
    train.add_argument("--binarize", choices=BINARIZE_CHOICES, help="binary images (default dynamic)")
    train.add_argument(
        "--iw-samples", type=int, default=IW_SAMPLES, help=f"IWAE importance samples (default {IW_SAMPLES})"
    )
    train.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    # hidden from --help: the first N examples of each split only (tests and quick pipeline checks)
    train.add_argument("--train-examples", type=int, default=None, help=argparse.SUPPRESS)
    train.add_argument("--test-examples", type=int, default=None, help=argparse.SUPPRESS)
    train.add_argument(
        "--no-progress", action="store_true", help="no progress bars: one plain line per epoch"
    )

    evaluate = sub.add_parser("evaluate", help="measure a run on its test split and write its report")
    evaluate.add_argument("run_dir", type=Path, help="a run directory written by `pixyz-zoo train`")
    evaluate.add_argument(
        "--iw-samples", type=int, default=IW_SAMPLES, help=f"IWAE importance samples (default {IW_SAMPLES})"
    )
    evaluate.add_argument(
        "--device", default=None, help="auto, cpu, cuda or cuda:N (default: the device the run trained on)"
    )
    evaluate.add_argument("--download", action="store_true", help="let torchvision download missing files")
    evaluate.add_argument(
        "--refine-steps",
        type=int,
        default=0,
        metavar="T",
        help="also report the test ELBO after 0..T gradient-step refinements of the posterior",
    )
    evaluate.add_argument(
        "--refine-rule",
        default=None,
        metavar="RULE",
        help="with --refine-steps: adam (default) or sgd steps on the posterior's mean and log-scale",
    )
    evaluate.add_argument(
        "--refine-lr",
        type=float,
        default=None,
        metavar="LR",
        help="with --refine-steps: the refinement's step size (default 0.01)",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")

    graph = sub.add_parser("graph", help="print a model's factorisation and loss and draw its DAG")
    graph.add_argument(
        "model",
        type=registered("model", MODELS),
        choices=sorted(MODELS),
        help="the model to print and draw (see `pixyz-zoo list`)",
    )
    graph.add_argument(
        "--dataset",
        default="digits",
        type=registered("dataset", DATASETS),
        choices=sorted(DATASETS),
        help="the dataset whose modalities the model is built on (default digits)",
    )
    graph.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    graph.add_argument(
        "--modalities",
        type=parse_names,
        default=None,
        metavar="A,B",
        help="the model of these modalities of the dataset only (default: all), as `train --modalities`",
    )
    add_model_options(graph)
    graph.add_argument("--parameters", action="store_true", help="draw the parameters theta and phi")
    graph.add_argument(
        "--out",
        default=None,
        help="figure path, or a folder for MODEL_graph.png (an existing one, or a path ending in /; "
        "default: here)",
    )

    reproduce = sub.add_parser(
        "reproduce", help="reproduce a paper's experiments (tables beside the paper's, figures)"
    )
    reproduce.add_argument("experiment", help="experiment name (see `pixyz-zoo list`)")
    size = reproduce.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small setting: minutes on 2 CPU cores")
    size.add_argument("--smoke", action="store_true", help="tiny pipeline check (numbers mean nothing)")
    reproduce.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default runs/reproduce-NAME[-DATASET][-quick])",
    )
    reproduce.add_argument(
        "--device", default="auto", help="auto (CUDA when present; the default), cpu, cuda or cuda:N"
    )
    reproduce.add_argument(
        "--dataset",
        default=None,
        type=registered("dataset", DATASETS),
        help="a dataset the experiment accepts (see `pixyz-zoo list`) instead of the setting's default",
    )
    reproduce.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    reproduce.add_argument("--download", action="store_true", help="let torchvision download missing files")
    reproduce.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default="fp32",
        help="every run's training precision (bf16: mixed precision; default fp32)",
    )
    reproduce.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def cmd_reproduce(args: argparse.Namespace) -> None:
    from pixyz_zoo.experiments import check_experiment, default_out, reproduce
    from pixyz_zoo.runs import check_writable_dir

    # before the output directory is announced
    check_experiment(args.experiment, args.dataset, args.device, args.seed)
    setting = "quick" if args.quick else "smoke" if args.smoke else "full"
    out = args.out or default_out(args.experiment, setting, args.dataset)
    check_writable_dir(out)
    print(f"output directory: {out}")
    results = reproduce(
        args.experiment,
        out=out,
        setting=setting,
        device=args.device,
        data_root=args.data_root,
        seed=args.seed,
        progress=not args.no_progress,
        dataset=args.dataset,
        precision=args.precision,
        download=args.download,
    )
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.md'} ({results['wall_seconds']:.0f} s)")


def cmd_list(what: str | None = None) -> None:
    """Every registered model, dataset and experiment; ``what``: one section (``models``,
    ``datasets``, ``experiments``) or the entries of one name (a name may be a model and an
    experiment, such as ``beta-vae``)."""
    from pixyz_zoo.experiments import EXPERIMENTS, experiment_names

    sections: dict[str, tuple[str, dict[str, list[str]]]] = {
        "models": ("Models:", {}),
        "datasets": ("Datasets:", {}),
        "experiments": ("Experiments (pixyz-zoo reproduce NAME [--quick]):", {}),
    }
    for name, cls in sorted(MODELS.items()):
        options = ", ".join(f"{k}={v!r}" for k, v in model_options(name).items())
        sections["models"][1][name] = [f"  {name:<12} {cls.description}", f"  {'':<12} options: {options}"]
    for name, info in sorted(DATASETS.items()):
        where = "offline" if info.offline else f"files under the data root (${DATA_ROOT_ENV})"
        sections["datasets"][1][name] = [f"  {name:<14} {info.description} [{where}]"]
    for name in experiment_names():
        lines = [f"  {name:<22} {EXPERIMENTS[name].description}"]
        if EXPERIMENTS[name].datasets:
            lines.append(f"  {'':<22} --dataset: {', '.join(EXPERIMENTS[name].datasets)}")
        sections["experiments"][1][name] = lines
    kind = None if what is None else fold_name(what).rstrip("s") + "s"  # "model" or "models"
    if kind is None or kind in sections:
        chosen = list(sections) if kind is None else [kind]
        shown = {section: list(sections[section][1]) for section in chosen}
    else:
        shown = {
            section: [name for name in entries if fold_name(name) == fold_name(what)]
            for section, (_, entries) in sections.items()
        }
        shown = {section: names for section, names in shown.items() if names}
        if not shown:
            hint = did_you_mean(what, [name for _, entries in sections.values() for name in entries])
            hint = f"; {hint}" if hint else ""
            raise KeyError(
                f"no model, dataset or experiment is named {what!r}{hint} (`pixyz-zoo list` shows them all; "
                "`pixyz-zoo list models`, `datasets` or `experiments` one kind)"
            )
    for index, (section, names) in enumerate(shown.items()):
        header, entries = sections[section]
        print(("\n" if index else "") + header)
        for name in names:
            print("\n".join(entries[name]))


#: what ``train`` uses for a setting left out (a resumed run keeps its own)
TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "epochs": 30,
    "batch_size": 64,
    "warmup_epochs": 0.0,
    "seed": 0,
    "binarize": "dynamic",
    "device": "auto",
}
#: the model options that have their own flag
OPTION_FLAGS = {"lr": "--lr", "clip_grad_norm": "--clip-grad-norm", "z_dim": "--z-dim", "arch": "--arch"}


def model_options_from(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The model options given (``-o`` and the option flags) and the argument that gave each; an
    option given twice with different values is refused (neither silently wins)."""
    options: dict[str, Any] = {}
    given_by: dict[str, str] = {}
    given = [(key, value, f"-o {key}") for key, value in args.option]
    given += [
        (key, getattr(args, key), flag)
        for key, flag in OPTION_FLAGS.items()
        if getattr(args, key) is not None
    ]

    def shown(argument: str, value: Any) -> str:
        return f"{argument}={value!r}" if argument.startswith("-o") else f"{argument} {value}"

    for key, value, argument in given:
        if key in options and options[key] != value:
            raise ValueError(
                f"the model option {key} is given twice with different values, "
                f"{shown(given_by[key], options[key])} and {shown(argument, value)}: give it once"
            )
        options[key], given_by[key] = value, argument
    return options, given_by


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings given on the command line (flat names, as ``RunSpec.from_settings``), by the
    argument whose dest is the setting's name; a setting left out (None) is not given."""
    from pixyz_zoo.run_spec import RunSpec

    given = {
        name: getattr(args, name, None) for name in RunSpec.settings() if name not in ("model", "options")
    }
    return {name: value for name, value in given.items() if value is not None}


def check_resume_arguments(
    args: argparse.Namespace, options: dict[str, Any], given_by: dict[str, str]
) -> None:
    """Refuse ``train --resume RUN`` arguments that differ from the run (only --epochs, --device change)."""
    from pixyz_zoo.run_spec import RunSpec, spec_differences
    from pixyz_zoo.runs import read_config

    stored = RunSpec.from_config(read_config(args.resume))
    given = {k: v for k, v in given_settings(args).items() if k not in RunSpec.resume_settings()}
    # what this command asks: the run, with the model, the options and the settings given here
    asked = stored.replace(model=args.model, options=options, **given)
    conflicts = spec_differences(stored, asked)
    flags = {d.setting: f"{d.flag} " for d in conflicts}
    flags |= {key: f"{flag} " if flag.startswith("--") else f"{flag}=" for key, flag in given_by.items()}
    listed = [f"{flags[d.setting]}{d.asked!r} (the run has {d.stored!r})" for d in conflicts]
    if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
        listed.append(f"--out {str(args.out)!r} (the run is in {str(args.resume)!r})")
    if listed:
        raise ValueError(
            f"--resume {args.resume} continues that run as it was made, and these arguments differ from "
            f"it: {'; '.join(listed)}. Leave them out (only {resume_flags()} may change on resume), or "
            "start a new run with another --out"
        )


def resume_flags() -> str:
    """The flags of the settings a resume may change, as a phrase (``--epochs, --device and ...``)."""
    from pixyz_zoo.run_spec import RunSpec, setting_flag

    settings = RunSpec.settings()
    flags = [setting_flag(settings[name][1]) for name in RunSpec.resume_settings() if name != "download"]
    return ", ".join(flags[:-1]) + " and " + flags[-1]


def resumed_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given that a resume may change, other than --epochs and --device (passed as such):
    ``check_every``, ``precision`` and ``download`` (a permission to fetch files that have gone)."""
    from pixyz_zoo.run_spec import RunSpec

    skip = ("epochs", "device")
    resumable = [name for name in RunSpec.resume_settings() if name not in skip]
    return {k: v for k, v in given_settings(args).items() if k in resumable}


def cmd_train(args: argparse.Namespace) -> None:
    """Train (data-parallel under torchrun: every process runs this, rank 0 reports and evaluates)."""
    from pixyz_zoo import distributed

    try:
        _train(args)
    finally:
        distributed.destroy()


def _train(args: argparse.Namespace) -> None:
    from pixyz_zoo import distributed
    from pixyz_zoo.run_spec import RunSpec
    from pixyz_zoo.runs import evaluate_run, resume_run, train_run

    # every argument is checked before any data is loaded or anything is written
    check_count(args.iw_samples, "--iw-samples")
    options, given_by = model_options_from(args)
    if args.model is None:  # `train --resume RUN`: the run's own model
        if args.resume is None:
            raise ValueError(
                "train needs the MODEL to train (see `pixyz-zoo list`), e.g. pixyz-zoo train vae "
                "--dataset digits; or --resume RUN_DIR to continue a run"
            )
        from pixyz_zoo.runs import read_config

        args.model = read_config(args.resume)["model"]
    progress: bool | str = "lines" if args.no_progress else True  # "lines": one plain line per epoch
    if args.resume is not None:
        check_resume_arguments(args, options, given_by)
        args.run_dir = args.resume
        model, _ = resume_run(
            args.resume, epochs=args.epochs, device=args.device, progress=progress, **resumed_changes(args)
        )
    else:
        # the run this command describes (checked as it is made): the CLI's defaults, then the arguments
        spec = RunSpec.from_settings(
            args.model, options=options, **{**TRAIN_DEFAULTS, **given_settings(args)}
        )
        args.run_dir = args.out or Path("runs") / f"{args.model}-{spec.data.dataset}-s{spec.train.seed}"

        def announce(notes: list[str]) -> None:  # once the run is checked (directory, device, fit)
            if distributed.launched_rank() == 0:
                print(f"run directory: {args.run_dir}")
                for note in notes:  # what the run takes without using
                    print(note)

        model, _ = train_run(spec, args.run_dir, progress=progress, announce=announce)
    if not distributed.is_main():
        return  # rank 0 alone reports and evaluates the run
    print(model)
    if not args.no_eval:
        args.stage = "evaluation"
        metrics = evaluate_run(
            args.run_dir, iw_samples=args.iw_samples, device=args.device, progress=not args.no_progress
        )
        report(metrics, args.run_dir)


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C left behind and what to do next: true at whatever point it came."""
    if args.command == "reproduce":
        return "interrupted. Run the same command again: every finished or interrupted run is picked up."
    if args.command == "evaluate":
        return (
            f"interrupted; the checkpoint in {args.run_dir} is untouched. Run the same command again "
            "to evaluate it."
        )
    if args.command != "train":
        return "interrupted."
    from pixyz_zoo.training import CHECKPOINT

    run_dir = getattr(args, "run_dir", None)
    if run_dir is None or not (Path(run_dir) / CHECKPOINT).exists():
        return (
            "interrupted before the first epoch ended; nothing was saved. Run the same command again "
            "to start over."
        )
    if getattr(args, "stage", None) == "evaluation":
        return (
            f"interrupted during the evaluation; the trained model is kept in {run_dir}. Evaluate it "
            f"with: pixyz-zoo evaluate {run_dir} --iw-samples {args.iw_samples}"
        )
    try:
        kept = f"the checkpoint of epoch {len(json.loads((Path(run_dir) / 'history.json').read_text()))}"
    except (OSError, ValueError, TypeError):
        kept = "the checkpoint of the last finished epoch"
    from pixyz_zoo.runs import read_config

    try:  # a data-parallel run resumes with as many processes as trained it
        world = int(read_config(run_dir)["train"]["world_size"])
    except (OSError, ValueError, TypeError, KeyError):
        world = 1
    launcher = "pixyz-zoo" if world == 1 else f"torchrun --nproc_per_node={world} -m pixyz_zoo"
    resume = f"{launcher} train {args.model} --resume {run_dir}"
    return f"interrupted; {kept} is kept in {run_dir}. Continue with: {resume}"


def report(metrics: dict[str, Any], run_dir: Path) -> None:
    from pixyz_zoo.refinement_runs import REFINED_STEP, refined_bounds
    from pixyz_zoo.runs import OBJECTIVE_TERMS

    print("\nTest metrics:")
    for key, value in metrics.items():
        if key != OBJECTIVE_TERMS and not REFINED_STEP.match(key):
            print(f"  {key:<18} {value:.4f}" if isinstance(value, float) else f"  {key:<18} {value}")
    curves = refined_bounds(metrics)  # evaluate --refine-steps: one column per refinement
    if curves:
        columns = [(label, steps, max(len(label), 12)) for label, steps in curves.items()]
        print("\nTest ELBO after t refinement steps:")
        print("     t  " + "  ".join(f"{label:>{w}}" for label, _, w in columns))
        for t in range(max(max(steps) for steps in curves.values()) + 1):
            cells = [f"{steps[t]:>{w}.4f}" if t in steps else " " * w for _, steps, w in columns]
            print(f"  {t:>4}  " + "  ".join(cells))
    if metrics.get(OBJECTIVE_TERMS):
        print("\nTest objective term by term:")
        for term in metrics[OBJECTIVE_TERMS]:
            print(f"  {term['value']:12.4f}  {term['term']}")
    print(f"\nreport: {Path(run_dir) / 'report.md'}")


def cmd_graph(args: argparse.Namespace) -> None:
    from pixyz_zoo import plots
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.models import build_model
    from pixyz_zoo.run_spec import RunSpec
    from pixyz_zoo.runs import as_the_run_reads, check_writable_dir, run_modalities

    name = Path(f"{args.model}_graph.png")
    out = Path(args.out) if args.out is not None else name
    folder = out.is_dir() or (args.out or "").endswith(("/", os.sep))
    target = out / name if folder else out  # a folder: the figure inside
    check_writable_dir(target.parent, "the figure's folder")
    # the model a run with these settings builds (its options checked as the run is described, before
    # any data is loaded): on the modalities a dataset read from files declares (no file needed), else
    # on its test split's
    settings = {"dataset": args.dataset, "data_root": args.data_root, "modalities": args.modalities}
    spec = RunSpec.from_settings(args.model, options=dict(args.option), **settings)
    modalities = run_modalities(spec)
    if modalities is None:
        modalities = as_the_run_reads(
            spec, load_dataset(args.dataset, "test", root=args.data_root)
        ).modalities
    model = build_model(args.model, modalities, **spec.model.options)
    print(str(model).split("Optimizer:")[0].rstrip())
    if len(model.test_terms) > 1:  # numbered as a run's report and training curve number them
        print("Test objective term by term:")
        for i, term in enumerate(model.test_terms, 1):
            print(f"  T{i}: {term.text}")
    fig = plots.draw_graphical_model(model, show_parameters=args.parameters, title=type(model).__name__)
    path = plots.save_figure(fig, target)
    print(f"graphical model: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    given = sys.argv[1:] if argv is None else list(argv)
    if not given:  # a first try: the commands and what each does, not "the arguments are required"
        parser.print_help()
        return 2
    split = split_option_value(given)
    if split:
        parser.error(split)
    args = parser.parse_args(argv)
    from pixyz_zoo import distributed
    from pixyz_zoo.models.base import NonFiniteLossError
    from pixyz_zoo.training import CheckpointError

    try:
        if distributed.launched() and args.command != "train":
            raise ValueError(
                f"`{args.command}` runs in one process; only `train` is data-parallel under torchrun. "
                f"Run it without torchrun: pixyz-zoo {args.command} ..."
            )
        if args.command == "list":
            cmd_list(args.what)
        elif args.command == "train":
            cmd_train(args)
        elif args.command == "evaluate":
            from pixyz_zoo.runs import evaluate_run, load_run_model, load_test_split

            check_count(args.iw_samples, "--iw-samples")
            from pixyz_zoo.refinement_runs import (
                check_refinable,
                check_refinement_options,
                evaluate_refinement_run,
            )

            check_refinement_options(args.refine_steps, args.refine_rule, args.refine_lr)
            run, progress = args.run_dir, not args.no_progress
            config, payload, model = load_run_model(run, args.device)
            if args.refine_steps:
                check_refinable(model)
            loaded = config, payload, model, load_test_split(config, args.download)
            metrics = evaluate_run(run, iw_samples=args.iw_samples, progress=progress, loaded=loaded)
            if args.refine_steps:
                rule = {"rule": args.refine_rule} if args.refine_rule is not None else {}  # else its default
                metrics = evaluate_refinement_run(
                    run, args.refine_steps, lr=args.refine_lr, progress=progress, loaded=loaded, **rule
                )
            report(metrics, run)
        elif args.command == "graph":
            cmd_graph(args)
        elif args.command == "reproduce":
            cmd_reproduce(args)
    except BrokenPipeError:  # the reader of the output has gone (`pixyz-zoo list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor fail flushing at exit
        return 128 + 13  # as a process killed by SIGPIPE
    except KeyboardInterrupt:
        if distributed.launched_rank() == 0:  # under torchrun every process is interrupted: say it once
            print(f"\n{interrupted(args)}", file=sys.stderr)
        return 130
    except (
        NonFiniteLossError,
        CheckpointError,
        OSError,
        KeyError,
        ValueError,
        TypeError,
        RuntimeError,
    ) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        # under torchrun every process reports its own error: say which
        where = (
            f" (rank {distributed.launched_rank()} of {os.environ['WORLD_SIZE']})"
            if distributed.launched()
            else ""
        )
        print(f"pixyz-zoo: error{where}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
