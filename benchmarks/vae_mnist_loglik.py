"""Test log-likelihood of the zoo's VAE on real MNIST digits (the ``mnist-10k`` split).

``mnist-10k`` is the real MNIST test files (t10k) divided 8,000 train / 2,000 test, so the
numbers are *not* comparable with papers' MNIST tables (60,000 training images). Setup:

- dynamic binarisation (a fresh Bernoulli draw of the grey levels for every batch);
- VAE with 2x512 ReLU MLP encoder and decoder, z = 64, Bernoulli decoder, N(0, I) prior;
- Adam lr 1e-3, batch 100, KL warm-up: beta ramps linearly 0 -> 1 over ``--warmup-epochs``;
- evaluation: test ELBO and IWAE bound with K = 1000 importance samples (both from the same
  samples, ``evaluate_log_likelihood``), plus the trainer's one-sample test loss.

Training goes through the zoo's ``Trainer`` with a run directory (default under /tmp): a
checkpoint is written after every epoch and an interrupted run continues where it stopped when
the same command is run again.

    python benchmarks/vae_mnist_loglik.py --epochs 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

import pixyz_zoo  # noqa: F401  (turns Pixyz's parameter cache off before pixyz.distributions loads)
from pixyz_zoo.datasets import DATA_ROOT_ENV, load_dataset
from pixyz_zoo.evaluation import evaluate_log_likelihood
from pixyz_zoo.models import build_model
from pixyz_zoo.training import CHECKPOINT, Trainer, resolve_device, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def default_data_root() -> str:
    """``$PIXYZ_ZOO_DATA``, else ``../shared/data`` relative to the repository root."""
    return os.environ.get(DATA_ROOT_ENV) or str((ROOT / ".." / "shared" / "data").resolve())


def log_epoch(trainer: Trainer, record: dict[str, float]) -> None:
    """Print one line per epoch (the log polled while the benchmark runs in the background)."""
    beta = trainer.hyperparameter_values(record["epoch"])["beta"]
    print(
        f"epoch {record['epoch']}/{trainer.epochs}: train loss {record['train_loss']:.3f}, "
        f"test loss {record.get('test_loss', float('nan')):.3f}, beta at end {beta:.2f}, "
        f"{record['seconds']:.1f}s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=default_data_root())
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--warmup-epochs", type=float, default=10.0, help="KL warm-up length (epochs)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--z-dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--k", type=int, default=1000, help="importance samples of the IWAE bound")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--run-dir", default="/tmp/pixyz_zoo_benchmarks/vae_mnist_loglik")
    parser.add_argument("--fresh", action="store_true", help="delete the run directory and start over")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/vae_mnist_loglik.json"))
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    run_dir = Path(args.run_dir)
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)

    start = time.perf_counter()
    train = load_dataset("mnist-10k", "train", root=args.data_root, binarize="dynamic", seed=args.seed)
    test = load_dataset("mnist-10k", "test", root=args.data_root, binarize="dynamic", seed=args.seed)
    seed_everything(args.seed)
    options = {"z_dim": args.z_dim, "hidden": list(args.hidden), "lr": args.lr, "arch": "mlp"}
    model = build_model("vae", train.modalities, **options).to(device)
    trainer = Trainer(
        model,
        train,
        test,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        warmup_epochs=args.warmup_epochs,
        run_dir=run_dir,
        progress=False,
        callback=log_epoch,
    )
    resumed_from = 0
    if (run_dir / CHECKPOINT).exists():
        trainer.resume()
        resumed_from = trainer.epoch
        print(f"resuming {run_dir} at epoch {resumed_from}", flush=True)
    print(model, flush=True)
    trainer.fit()
    train_wall = time.perf_counter() - start

    start = time.perf_counter()
    ll = evaluate_log_likelihood(model, test, k=args.k, batch_size=args.batch_size, seed=args.seed)
    eval_wall = time.perf_counter() - start
    test_loss = trainer.test_loss()

    epoch_seconds = [r["seconds"] for r in trainer.history]
    result: dict[str, Any] = {
        "benchmark": "vae_mnist_loglik",
        "command": command_line(argv),
        "settings": {
            "dataset": "mnist-10k (real MNIST t10k files split 8,000 train / 2,000 test, seed 0)",
            "train_examples": len(train),
            "test_examples": len(test),
            "binarize": "dynamic",
            "model": "vae",
            "model_config": model.config,
            "architecture": "encoder MLP 784-512-512-(2x64), decoder MLP 64-512-512-784, ReLU, "
            "Bernoulli logits decoder, softplus scale + 1e-4",
            "optimizer": f"Adam lr {args.lr}",
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "kl_warmup": f"beta ramps linearly from 0 to 1 over the first {args.warmup_epochs:g} epochs "
            "(per step), then stays at 1",
            "iw_samples": args.k,
            "seed": args.seed,
            "run_dir": str(run_dir),
            "data_root": args.data_root,
        },
        "results": {
            "test_iwae": ll[f"iwae_{args.k}"],
            "test_elbo": ll["elbo"],
            "test_elbo_one_sample": -test_loss,
            "final_train_loss": trainer.history[-1]["train_loss"] if trainer.history else None,
            "final_test_loss": trainer.history[-1].get("test_loss") if trainer.history else None,
            "units": "nats per test example; IWAE and ELBO are lower bounds of log p(x), higher is better",
        },
        "history": trainer.history,
        "wall_seconds": {
            "training_all_epochs": sum(epoch_seconds),
            "mean_epoch": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else None,
            "this_invocation_training": train_wall,
            "evaluation_iwae": eval_wall,
        },
        "resumed_from_epoch": resumed_from,
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }
    out = write_record(result, args.out)
    print(json.dumps(result["results"], indent=2))
    print(f"training {sum(epoch_seconds):.0f}s, IWAE-{args.k} evaluation {eval_wall:.0f}s; written {out}")
    return result


if __name__ == "__main__":
    main()
