"""Throughput (images/s) of the ground-truth generators behind the disentanglement datasets.

Measured, best of ``--repeats`` repetitions of ``--n`` images each (random factor combinations,
seed 0, the same in every repetition):

- ``dsprites-procedural``: :class:`~pixyz_zoo.datasets.dsprites.DSpritesRenderer`, 64x64 binary
  sprites of all three shapes mixed (``sample_observations_from_factors``);
- ``colored-shapes``: :class:`~pixyz_zoo.datasets.colored_shapes.ColoredShapes`, 32x32 RGB;
- ``dsprites-npz``: :class:`~pixyz_zoo.datasets.dsprites.DSpritesNPZ` on the real file when it is
  in ``<data root>/dsprites/`` (first-load time, then lookups of random factor combinations);
- ``synthetic-npz-{packed,memmap}``: the same loader on a file written here in the real format
  with a smaller grid (shape 3, scale 6, orientation 4, posX 16, posY 16: 18,432 random binary
  64x64 images), compressed (the published layout: decompressed once into a bit-packed array)
  and uncompressed (memory-mapped). Skip with ``--no-synthetic-npz``.

Each figure is reported by wall time and by process CPU time (on a shared machine the wall time
also counts slices taken by other processes; the load average is recorded next to it).

    python benchmarks/renderer_throughput.py
    python benchmarks/renderer_throughput.py --n 20000 --repeats 5 --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixyz_zoo.datasets.base import resolve_data_root
from pixyz_zoo.datasets.colored_shapes import ColoredShapes
from pixyz_zoo.datasets.dsprites import (
    DSPRITES_DIR,
    DSPRITES_FILE,
    DSpritesNPZ,
    DSpritesRenderer,
    heart_table,
)
from pixyz_zoo.datasets.ground_truth import GroundTruthData

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SIZES = (1, 3, 6, 4, 16, 16)  # color, shape, scale, orientation, posX, posY


def best_of(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Best (minimum) wall and CPU seconds of ``repeats`` calls, and all of them."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"best_wall_s": min(walls), "best_cpu_s": min(cpus), "wall_s": walls, "cpu_s": cpus}


def measure(data: GroundTruthData, n: int, repeats: int) -> dict[str, Any]:
    """Images/s of ``data.sample_observations_from_factors`` on ``n`` random combinations."""
    factors = data.sample_factors(n, np.random.default_rng(0))
    data.sample_observations_from_factors(factors[: min(n, 256)])  # warm-up (tables, first load)
    timing = best_of(lambda: data.sample_observations_from_factors(factors), repeats)
    result = {
        "images": n,
        "observation_shape": list(data.observation_shape),
        "images_per_s_wall": n / timing["best_wall_s"],
        "images_per_s_cpu": n / timing["best_cpu_s"],
        **timing,
    }
    print(
        f"{data.name:>24}: {result['images_per_s_wall']:>10,.0f} images/s (wall), "
        f"{result['images_per_s_cpu']:>10,.0f} images/CPU-s, x{list(data.observation_shape)}"
    )
    return result


def write_synthetic_npz(path: Path, compressed: bool) -> None:
    """A file in the dSprites format with the smaller ``SYNTHETIC_SIZES`` grid, random images."""
    classes = np.array(list(itertools.product(*[range(s) for s in SYNTHETIC_SIZES])), dtype=np.int64)
    rng = np.random.default_rng(0)
    images = (rng.random((len(classes), 64, 64), dtype=np.float32) < 0.05).astype(np.uint8)
    save = np.savez_compressed if compressed else np.savez
    save(path, imgs=images, latents_classes=classes, latents_values=classes.astype(np.float64))


def measure_npz(path: Path, n: int, repeats: int, label: str) -> dict[str, Any]:
    start = time.perf_counter()
    data = DSpritesNPZ(path)
    open_s = time.perf_counter() - start
    start = time.perf_counter()
    data.load_images()
    load_s = time.perf_counter() - start
    data.name = label
    result = measure(data, n, repeats)
    result.update(
        {
            "file": str(path),
            "file_bytes": path.stat().st_size,
            "grid": list(data.factor_sizes),
            "storage": data.storage,
            "open_s": open_s,
            "first_load_s": load_s,
        }
    )
    print(f"{'':>24}  open {open_s:.2f} s, first load of the images {load_s:.2f} s ({data.storage})")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="images per repetition")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--data-root", default=None, help="data root holding dsprites/ (real file)")
    parser.add_argument("--no-synthetic-npz", action="store_true", help="skip the synthetic npz files")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/renderer_throughput.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()
    start = time.perf_counter()
    heart_table()
    table_s = time.perf_counter() - start
    results: dict[str, Any] = {}
    results["dsprites-procedural"] = measure(DSpritesRenderer(), args.n, args.repeats)
    results["colored-shapes"] = measure(ColoredShapes(), args.n, args.repeats)

    real = resolve_data_root(args.data_root) / DSPRITES_DIR / DSPRITES_FILE
    if real.is_file():
        results["dsprites-npz"] = measure_npz(real, args.n, args.repeats, "dsprites-npz")
    else:
        results["dsprites-npz"] = {"skipped": f"no file at {real}"}
        print(f"{'dsprites-npz':>24}: skipped, no file at {real}")
    if not args.no_synthetic_npz:
        with tempfile.TemporaryDirectory() as folder:
            for compressed, label in ((True, "synthetic-npz-packed"), (False, "synthetic-npz-memmap")):
                path = Path(folder) / f"{label}.npz"
                write_synthetic_npz(path, compressed)
                results[label] = measure_npz(path, args.n, args.repeats, label)
                results[label]["file"] = f"(temporary) {path.name}"

    result = {
        "benchmark": "renderer_throughput",
        "command": command_line(argv),
        "settings": {"images_per_repetition": args.n, "repeats": args.repeats, "factor_seed": 0},
        "heart_table_build_s": table_s,
        "results": results,
        "environment": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        },
    }
    out = write_record(result, args.out)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
