"""Wall time of each disentanglement metric at its standard settings (10,000 samples).

The representation is the identity of a procedural ground truth with dSprites' factor sizes
(shape 3, scale 6, orientation 40, position x 32, position y 32; Matthey et al. 2017) whose
observations are the factor values themselves, standardised: no network runs, so the times are
those of the metrics (sampling, classifiers, binning), the floor under any model's evaluation.
A model adds the cost of encoding the observations each metric draws (reported as
``observations_represented``).

Settings are the defaults of ``pixyz_zoo.evaluation.disentanglement`` (disentanglement_lib's):
BetaVAE 10,000 + 5,000 points of 64 pairs; FactorVAE 10,000 variance samples and 10,000 + 5,000
votes of batches of 64; MIG 10,000 samples, 20 bins; DCI gradient-boosted trees on 10,000 train /
5,000 test; SAP linear SVMs on 10,000 train / 5,000 test. Also timed: DCI with the random-forest
predictor and ``compute_all(quick=True)``.

    python benchmarks/metric_timing.py
    python benchmarks/metric_timing.py --metrics mig sap --out /tmp/timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch

from pixyz_zoo.datasets.ground_truth import FactorsAsObservations
from pixyz_zoo.evaluation.disentanglement import (
    QUICK_SETTINGS,
    beta_vae_score,
    compute_all,
    dci,
    factor_vae_score,
    mutual_information_gap,
    sap_score,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DSPRITES_FACTORS = {"shape": 3, "scale": 6, "orientation": 40, "position_x": 32, "position_y": 32}


class CountingIdentity:
    """The standardised factors as the code; counts the observations it represents."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        s = np.asarray(sizes, dtype=np.float64)
        self.mean, self.std = (s - 1) / 2, np.sqrt((s**2 - 1) / 12)
        self.count = 0

    def __call__(self, observations: torch.Tensor) -> np.ndarray:
        self.count += len(observations)
        return (observations.numpy().astype(np.float64) - self.mean) / self.std


def timed(fn: Callable[[], dict[str, float]], represent: CountingIdentity) -> dict[str, Any]:
    represent.count = 0
    start = time.perf_counter()
    values = fn()
    seconds = time.perf_counter() - start
    print(f"  {seconds:8.1f}s  {json.dumps({k: round(v, 4) for k, v in values.items()})}", flush=True)
    return {"seconds": seconds, "observations_represented": represent.count, "values": values}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    choices = ["beta_vae", "factor_vae", "mig", "dci", "sap", "dci_random_forest", "compute_all_quick"]
    parser.add_argument("--metrics", nargs="+", choices=choices, default=choices)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/metric_timing.json"))
    args = parser.parse_args(argv)

    gt = FactorsAsObservations(tuple(DSPRITES_FACTORS.values()), tuple(DSPRITES_FACTORS))
    represent = CountingIdentity(gt.factor_sizes)
    runs: dict[str, Callable[[np.random.Generator], dict[str, float]]] = {
        "beta_vae": lambda rng: beta_vae_score(gt, represent, rng),
        "factor_vae": lambda rng: factor_vae_score(gt, represent, rng),
        "mig": lambda rng: mutual_information_gap(gt, represent, rng),
        "dci": lambda rng: dci(gt, represent, rng),
        "sap": lambda rng: sap_score(gt, represent, rng),
        "dci_random_forest": lambda rng: dci(gt, represent, rng, predictor="random_forest"),
        "compute_all_quick": lambda rng: compute_all(gt, represent, rng, quick=True),
    }
    load_before = os.getloadavg()
    timings = {}
    for name in args.metrics:
        print(name, flush=True)
        timings[name] = timed(lambda name=name: runs[name](np.random.default_rng(args.seed)), represent)

    result: dict[str, Any] = {
        "benchmark": "metric_timing",
        "command": command_line(argv),
        "settings": {
            "ground_truth": "procedural, independent uniform factors with dSprites' sizes "
            + json.dumps(DSPRITES_FACTORS)
            + "; observation = factor vector",
            "representation": "identity: factors standardised to mean 0, variance 1 (no network)",
            "metric_options": "standard defaults (disentanglement_lib's); dci_random_forest: "
            "predictor='random_forest'; compute_all_quick: " + json.dumps(QUICK_SETTINGS),
            "seed": args.seed,
        },
        "timings": timings,
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit_learn": sklearn.__version__,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "note": "shared machine: other jobs ran at the same time; times are wall-clock seconds",
        },
    }
    out = write_record(result, args.out)
    print(json.dumps({k: round(v["seconds"], 1) for k, v in timings.items()}))
    print(f"written {out}")
    return result


if __name__ == "__main__":
    main()
