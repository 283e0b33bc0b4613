"""``pixyz-zoo``: list, train, evaluate and draw the zoo's models from the command line.

pixyz-zoo list
pixyz-zoo train vae --dataset digits --epochs 10 --out runs/vae
pixyz-zoo train vae --resume runs/vae --epochs 20
pixyz-zoo evaluate runs/vae --iw-samples 1000
pixyz-zoo graph vae --out vae.png
pixyz-zoo reproduce beta-vae --quick

``train --train-examples N --test-examples M`` (not listed by ``--help``) keeps only the first N / M
examples of each split: a pipeline check in seconds, as the tests run every model on every dataset.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

from pixyz_zoo.datasets import BINARIZE_CHOICES, DATA_ROOT_ENV, DATASETS
from pixyz_zoo.models import MODELS, model_options


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with a Python literal value (``z_dim=2``, ``hidden=[256,256]``, ``arch=conv``)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"model options are key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip().replace("-", "_"), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixyz-zoo", description="Deep generative models written as probabilistic programs with Pixyz."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list models and datasets")

    train = sub.add_parser("train", help="train a model into a run directory, then evaluate it")
    train.add_argument("model", choices=sorted(MODELS))
    train.add_argument("--dataset", default="digits", choices=sorted(DATASETS))
    train.add_argument(
        "--epochs", type=int, default=None, help="total epochs (default 30; --resume: as before)"
    )
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    train.add_argument("--clip-grad-norm", type=float, default=None)
    train.add_argument("--warmup-epochs", type=float, default=0.0, help="KL warm-up length in epochs")
    train.add_argument("--z-dim", type=int, default=None, help="latent size (model option z_dim)")
    train.add_argument("--arch", choices=["mlp", "conv"], default=None, help="network preset")
    train.add_argument(
        "--option",
        "-o",
        type=parse_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any model option, e.g. -o hidden=[256,256] (see `pixyz-zoo list`)",
    )
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--out", type=Path, default=None, help="run directory (default runs/MODEL-DATASET-sSEED)"
    )
    train.add_argument(
        "--resume", type=Path, default=None, metavar="RUN_DIR", help="continue an interrupted run"
    )
    train.add_argument(
        "--data-root", default=None, help=f"dataset folder (default ${DATA_ROOT_ENV} or ./data)"
    )
    train.add_argument("--download", action="store_true", help="let torchvision download missing files")
    train.add_argument("--binarize", choices=BINARIZE_CHOICES, default="dynamic")
    train.add_argument("--iw-samples", type=int, default=1000, help="importance samples of the IWAE bound")
    train.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    # hidden from --help: the first N examples of each split only (tests and quick pipeline checks)
    train.add_argument("--train-examples", type=int, default=None, help=argparse.SUPPRESS)
    train.add_argument("--test-examples", type=int, default=None, help=argparse.SUPPRESS)
    train.add_argument("--no-progress", action="store_true")

    evaluate = sub.add_parser("evaluate", help="measure a run on its test split and write its report")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--iw-samples", type=int, default=1000)
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--no-progress", action="store_true")

    graph = sub.add_parser("graph", help="print a model's factorisation and loss and draw its DAG")
    graph.add_argument("model", choices=sorted(MODELS))
    graph.add_argument("--dataset", default="digits", choices=sorted(DATASETS))
    graph.add_argument("--data-root", default=None)
    graph.add_argument("--option", "-o", type=parse_option, action="append", default=[], metavar="KEY=VALUE")
    graph.add_argument("--parameters", action="store_true", help="draw the parameters theta and phi")
    graph.add_argument("--out", type=Path, default=None, help="figure path (default MODEL_graph.png)")

    reproduce = sub.add_parser(
        "reproduce", help="reproduce a paper's experiments (tables beside the paper's, figures)"
    )
    reproduce.add_argument("experiment", help="experiment name (see `pixyz-zoo list`)")
    size = reproduce.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small setting: minutes on 2 CPU cores")
    size.add_argument("--smoke", action="store_true", help="tiny pipeline check (numbers mean nothing)")
    reproduce.add_argument(
        "--out", type=Path, default=None, help="output directory (default runs/reproduce-NAME[-quick])"
    )
    reproduce.add_argument("--device", default="auto")
    reproduce.add_argument("--data-root", default=None)
    reproduce.add_argument("--seed", type=int, default=0)
    reproduce.add_argument("--no-progress", action="store_true")
    return parser


def cmd_reproduce(args: argparse.Namespace) -> None:
    from pixyz_zoo.experiments import reproduce

    setting = "quick" if args.quick else "smoke" if args.smoke else "full"
    suffix = "" if setting == "full" else f"-{setting}"
    out = args.out or Path("runs") / f"reproduce-{args.experiment}{suffix}"
    print(f"output directory: {out}")
    results = reproduce(
        args.experiment,
        out=out,
        setting=setting,
        device=args.device,
        data_root=args.data_root,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.md'} ({results['wall_seconds']:.0f} s)")


def cmd_list() -> None:
    print("Models:")
    for name, cls in sorted(MODELS.items()):
        print(f"  {name:<12} {cls.description}")
        options = ", ".join(f"{k}={v!r}" for k, v in model_options(name).items())
        print(f"  {'':<12} options: {options}")
    print("\nDatasets:")
    for name, info in sorted(DATASETS.items()):
        where = "offline" if info.offline else f"files under the data root (${DATA_ROOT_ENV})"
        print(f"  {name:<14} {info.description} [{where}]")
    from pixyz_zoo.experiments import EXPERIMENTS, experiment_names

    print("\nExperiments (pixyz-zoo reproduce NAME [--quick]):")
    for name in experiment_names():
        print(f"  {name:<22} {EXPERIMENTS[name].description}")


def cmd_train(args: argparse.Namespace) -> None:
    from pixyz_zoo.runs import evaluate_run, resume_run, train_run

    progress = not args.no_progress
    if args.resume is not None:
        model, trainer = resume_run(args.resume, epochs=args.epochs, device=args.device, progress=progress)
        run_dir = args.resume
    else:
        options = dict(args.option)
        for key, value in (
            ("lr", args.lr),
            ("clip_grad_norm", args.clip_grad_norm),
            ("z_dim", args.z_dim),
            ("arch", args.arch),
        ):
            if value is not None:
                options[key] = value
        run_dir = args.out or Path("runs") / f"{args.model}-{args.dataset}-s{args.seed}"
        print(f"run directory: {run_dir}")
        model, trainer = train_run(
            args.model,
            run_dir,
            dataset=args.dataset,
            epochs=args.epochs or 30,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
            warmup_epochs=args.warmup_epochs,
            data_root=args.data_root,
            binarize=args.binarize,
            download=args.download,
            options=options,
            progress=progress,
            train_examples=args.train_examples,
            test_examples=args.test_examples,
        )
    print(model)
    if not args.no_eval:
        report(
            evaluate_run(run_dir, iw_samples=args.iw_samples, device=args.device, progress=progress), run_dir
        )


def report(metrics: dict[str, Any], run_dir: Path) -> None:
    print("\nTest metrics:")
    for key, value in metrics.items():
        print(f"  {key:<18} {value:.4f}" if isinstance(value, float) else f"  {key:<18} {value}")
    print(f"\nreport: {Path(run_dir) / 'report.md'}")


def cmd_graph(args: argparse.Namespace) -> None:
    from pixyz_zoo import plots
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.models import build_model

    data = load_dataset(args.dataset, "test", root=args.data_root)
    model = build_model(args.model, data.modalities, **dict(args.option))
    print(str(model).split("Optimizer:")[0].rstrip())
    fig = plots.draw_graphical_model(
        model.generative,
        model.inference,
        observed=list(model.modalities),
        show_parameters=args.parameters,
        title=type(model).__name__,
    )
    path = plots.save_figure(fig, args.out or Path(f"{args.model}_graph.png"))
    print(f"graphical model: {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pixyz_zoo.models.base import NonFiniteLossError
    from pixyz_zoo.training import CheckpointError

    try:
        if args.command == "list":
            cmd_list()
        elif args.command == "train":
            cmd_train(args)
        elif args.command == "evaluate":
            from pixyz_zoo.runs import evaluate_run

            report(
                evaluate_run(
                    args.run_dir,
                    iw_samples=args.iw_samples,
                    device=args.device,
                    progress=not args.no_progress,
                ),
                args.run_dir,
            )
        elif args.command == "graph":
            cmd_graph(args)
        elif args.command == "reproduce":
            cmd_reproduce(args)
    except KeyboardInterrupt:
        resume = getattr(args, "resume", None) or getattr(args, "out", None)
        if args.command == "reproduce":
            hint = " Run the same command again: every finished or interrupted run is picked up."
        elif resume:
            hint = f" Continue with: pixyz-zoo train {args.model} --resume {resume}"
        else:
            hint = ""
        print(f"\ninterrupted; the last epoch's checkpoint is kept.{hint}", file=sys.stderr)
        return 130
    except (
        NonFiniteLossError,
        CheckpointError,
        FileNotFoundError,
        FileExistsError,
        KeyError,
        ValueError,
        TypeError,
        RuntimeError,
    ) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"pixyz-zoo: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
