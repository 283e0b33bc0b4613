"""dSprites (Matthey et al. 2017): 64x64 binary sprites from five known factors.

The dataset of Matthey, Higgins, Hassabis and Lerchner (2017), "dSprites: Disentanglement testing
Sprites dataset" (https://github.com/deepmind/dsprites-dataset), used by beta-VAE (Higgins et al.
2017) and its successors: every combination of

- shape (3 values): square, ellipse, heart;
- scale (6): linearly spaced in [0.5, 1];
- orientation (40): angles in [0, 2 pi];
- posX (32), posY (32): linearly spaced in [0, 1];

appears exactly once (737,280 images; the file also has a colour factor of size 1, dropped here).

Two :class:`~pixyz_zoo.datasets.ground_truth.GroundTruthData` generators share that grid:

- :class:`DSpritesNPZ` reads the real file ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``
  from ``<data root>/dsprites/``. Nothing is downloaded.
- :class:`DSpritesRenderer` draws sprites procedurally, offline, on demand. It *approximates* the
  original pixels: same factor grid, same kind of shapes, sizes and positions chosen to look
  alike, but not pixel-identical (numbers obtained on it are not comparable with papers').

The rasterisation helpers (:func:`rasterize` and the shape tests) are shared with
:mod:`pixyz_zoo.datasets.colored_shapes`.

Registered datasets (``load_dataset(name, split)``): ``dsprites`` (the real file) and
``dsprites-procedural`` (offline), each a seeded subset of the grid: 20,000 train / 2,000 test
examples, disjoint (see :func:`~pixyz_zoo.datasets.ground_truth.split_grid_indices`, seed 0
whatever the training seed, so runs with different seeds see the same data). The images are
already binary: the ``binarize`` argument is ignored (``none``). Each dataset yields
``{"x": (1, 64, 64) bernoulli image}`` and carries ``.ground_truth`` and ``.factors``. The
examples are held as float32 (the train split takes 330 MB); the procedural ones are rendered
when the split is loaded (a few seconds for 20,000, see ``benchmarks/renderer_throughput.py``),
the real ones are looked up after the file's images are read once (see :class:`DSpritesNPZ`).
"""

from __future__ import annotations

import functools
import math
import os
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixyz_zoo.datasets.base import DATA_ROOT_ENV, resolve_data_root
from pixyz_zoo.datasets.ground_truth import GroundTruthData, GroundTruthDataset, mixed_radix_strides
from pixyz_zoo.modalities import Modality

# ---------------------------------------------------------------------------------- the factor grid
SHAPE_NAMES = ("square", "ellipse", "heart")
DSPRITES_FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
DSPRITES_FACTOR_SIZES = (3, 6, 40, 32, 32)
DSPRITES_IMAGE_SIZE = 64
#: what models read of dSprites: the ``(1, 64, 64)`` image in {0, 1}
DSPRITES_IMAGE = Modality("x", (1, DSPRITES_IMAGE_SIZE, DSPRITES_IMAGE_SIZE), "bernoulli")
DSPRITES_TRAIN_SIZE = 20_000
DSPRITES_TEST_SIZE = 2_000
#: The train/test subsets are drawn from this seed, whatever the training seed.
SUBSET_SEED = 0

# ------------------------------------------------------------------------------- sprite geometry
# Shapes live in a *sprite frame* (p to the right, q up) in sprite units; the renderer maps one
# sprite unit to ``size`` of the canvas side. All shapes fit in the circle of radius 1/sqrt(2).
SQUARE_HALF_SIDE = 0.5
ELLIPSE_SEMI_AXES = (0.6, 0.3)
HEART_HALF_WIDTH = 0.55
HEART_VERTICES = 256
HEART_TABLE_EXTENT = 0.75  # the heart's lookup table covers [-0.75, 0.75]^2 of the sprite frame
HEART_TABLE_RESOLUTION = 512


def heart_polygon(num_vertices: int = HEART_VERTICES) -> np.ndarray:
    """Vertices ``(m, 2)`` of the heart in the sprite frame, from the classic parametric curve.

    ``x = 16 sin^3 t``, ``y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t``, centred on its bounding
    box and scaled (both axes alike) to a half-width of ``HEART_HALF_WIDTH``; the point at the
    bottom, the two lobes at the top.
    """
    t = np.linspace(0.0, 2.0 * np.pi, num_vertices, endpoint=False)
    x = 16.0 * np.sin(t) ** 3
    y = 13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t)
    y = y - (y.max() + y.min()) / 2.0
    return np.stack([x, y], axis=1) * (HEART_HALF_WIDTH / 16.0)


def scanline_fill(polygon: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Whether each grid point ``(xs[j], ys[i])`` lies inside ``polygon`` ``(m, 2)``: ``(len(ys), len(xs))``.

    Even-odd rule, one scanline per row: a point is inside when an odd number of the polygon's
    edges cross its row to its left.
    """
    xa, ya = polygon[:, 0], polygon[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    inside = np.zeros((len(ys), len(xs)), dtype=bool)
    for i, y in enumerate(ys):
        crosses = (ya > y) != (yb > y)
        t = (y - ya[crosses]) / (yb[crosses] - ya[crosses])
        x_cross = np.sort(xa[crosses] + t * (xb[crosses] - xa[crosses]))
        inside[i] = np.searchsorted(x_cross, xs, side="right") % 2 == 1
    return inside


@functools.cache
def heart_table(resolution: int = HEART_TABLE_RESOLUTION) -> torch.Tensor:
    """The filled heart sampled on a ``resolution``-square grid of the sprite frame (bool).

    Entry ``[i, j]`` is the cell centred at ``q = -E + (i + 1/2) 2E/R``, ``p = -E + (j + 1/2) 2E/R``
    with ``E = HEART_TABLE_EXTENT``; the border cells are empty. Computed once per process;
    a lookup costs one gather per pixel.
    """
    step = 2.0 * HEART_TABLE_EXTENT / resolution
    centres = -HEART_TABLE_EXTENT + (np.arange(resolution) + 0.5) * step
    return torch.from_numpy(scanline_fill(heart_polygon(), centres, centres))


@dataclass(frozen=True)
class SpriteShape:
    """A shape as an inside test in its own normalised frame.

    The rasteriser hands ``inside`` the coordinates ``u = p * scale[0] + offset[0]`` and
    ``v = q * scale[1] + offset[1]`` of each pixel centre, where ``(p, q)`` is the sprite frame
    (sprite units, ``p`` to the right, ``q`` up); folding the affine map into the per-sprite
    coefficients keeps the per-pixel work to a few tensor operations. ``inside`` may overwrite
    ``u`` and ``v``.
    """

    name: str
    inside: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    scale: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    def contains(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Whether the sprite-frame points ``(p, q)`` are inside the shape."""
        u = p.to(torch.float32) * self.scale[0] + self.offset[0]
        v = q.to(torch.float32) * self.scale[1] + self.offset[1]
        return self.inside(u, v)


def _inside_square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs_(), v.abs_()) <= SQUARE_HALF_SIDE


def _inside_unit_disc(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u.mul_(u).addcmul_(v, v) <= 1.0


def _inside_heart_table(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(u, v)`` in table cells (column, row); points off the table land on its empty border."""
    table = heart_table()
    last = table.shape[0] - 1
    u.clamp_(0, last).floor_()
    index = v.clamp_(0, last).floor_().mul_(table.shape[0]).add_(u).long()
    return table.reshape(-1)[index]


_HEART_CELLS = HEART_TABLE_RESOLUTION / (2.0 * HEART_TABLE_EXTENT)  # table cells per sprite unit
#: The shapes, in the order of ``SHAPE_NAMES`` (the value of the shape factor indexes it).
SHAPES: tuple[SpriteShape, ...] = (
    SpriteShape("square", _inside_square),
    SpriteShape("ellipse", _inside_unit_disc, (1.0 / ELLIPSE_SEMI_AXES[0], 1.0 / ELLIPSE_SEMI_AXES[1])),
    SpriteShape(
        "heart",
        _inside_heart_table,
        (_HEART_CELLS, _HEART_CELLS),
        (HEART_TABLE_EXTENT * _HEART_CELLS, HEART_TABLE_EXTENT * _HEART_CELLS),
    ),
)
#: Radius (sprite units) of a circle around the sprite's centre that holds every shape.
BOUNDING_RADIUS = SQUARE_HALF_SIDE * math.sqrt(2.0)


def _as_float(values: np.ndarray | torch.Tensor | float, n: int) -> torch.Tensor:
    out = values if torch.is_tensor(values) else torch.as_tensor(np.asarray(values, dtype=np.float32))
    out = out.to(torch.float32)
    return out.expand(n) if out.ndim == 0 else out


def rasterize(
    shape_ids: np.ndarray | torch.Tensor,
    centres: np.ndarray | torch.Tensor,
    sizes: np.ndarray | torch.Tensor | float,
    angles: np.ndarray | torch.Tensor | float,
    image_size: int | tuple[int, int],
    chunk_size: int = 1024,
    dtype: torch.dtype = torch.bool,
) -> torch.Tensor:
    """Binary masks ``(n, H, W)`` of ``n`` sprites, vectorised over the batch and the pixels.

    Each pixel centre is mapped into the sprite frame (translate to the sprite's centre, rotate
    by ``-angle``, divide by its size) and tested against the shape there; a pixel is on when
    its centre is inside. Only a square window around each sprite (side ``2 r + 2`` pixels for
    the largest bounding radius ``r`` in the batch) is evaluated, then written into the canvas.

    Args:
        shape_ids: ``(n,)`` index into ``SHAPES`` (``SHAPE_NAMES``).
        centres: ``(n, 2)`` sprite centres ``(x, y)`` as fractions of the width and height;
            ``x`` grows to the right, ``y`` grows *downwards* (the row index), as in the image.
        sizes: ``(n,)`` or scalar, canvas fraction (of the shorter side) per sprite unit.
        angles: ``(n,)`` or scalar, rotation in radians, counter-clockwise as seen on screen.
        image_size: ``H`` (square) or ``(H, W)``.
        chunk_size: sprites rasterised at a time (bounds the temporary memory).
        dtype: of the result (``torch.float32`` gives 0./1. images directly).
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    ids = (shape_ids if torch.is_tensor(shape_ids) else torch.as_tensor(np.asarray(shape_ids))).long()
    n = ids.shape[0]
    out = torch.zeros(n, height, width, dtype=dtype)
    if n == 0:
        return out
    if ids.min() < 0 or ids.max() >= len(SHAPES):
        raise ValueError(f"shape ids must lie in 0..{len(SHAPES) - 1} ({', '.join(SHAPE_NAMES)})")
    centre = _as_float(centres, n).reshape(n, 2)
    cx = centre[:, 0] * width
    cy = centre[:, 1] * height
    size = _as_float(sizes, n) * min(height, width)
    angle = _as_float(angles, n)
    # p = a dx + b dy, q = a dy - b dx: the inverse rotation and scaling of the offsets (dx, dy).
    a = torch.cos(angle) / size
    b = torch.sin(angle) / size
    window = math.ceil(2.0 * BOUNDING_RADIUS * float(size.max())) + 2
    win_h, win_w = min(window, height), min(window, width)
    x0 = torch.floor(cx - win_w / 2).clamp_(0, width - win_w)
    y0 = torch.floor(cy - win_h / 2).clamp_(0, height - win_h)
    cols = torch.arange(win_w, dtype=torch.float32)
    rows = torch.arange(win_h, dtype=torch.float32)
    first_pixel = (y0 * width + x0).long()  # flat index of each window's top-left pixel
    window_pixels = (torch.arange(win_h)[:, None] * width + torch.arange(win_w)).reshape(-1)
    flat = out.view(-1)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        chunk_ids = ids[start:stop]
        present = torch.unique(chunk_ids).tolist()
        for shape_id in present:
            shape = SHAPES[shape_id]
            if len(present) == 1:
                which = torch.arange(start, stop)
            else:
                which = (chunk_ids == shape_id).nonzero().squeeze(1) + start
            xs = x0[which, None, None] + cols  # (k, 1, w) left pixel edges
            ys = y0[which, None, None] + rows[:, None]  # (k, h, 1) top pixel edges
            dx = xs + (0.5 - cx[which, None, None])  # pixel centre, right of the sprite's centre
            dy = (cy[which, None, None] - 0.5) - ys  # pixel centre, above the sprite's centre
            ak, bk = a[which, None, None], b[which, None, None]
            (su, sv), (ou, ov) = shape.scale, shape.offset
            u = (ak * su) * dx + ou + (bk * su) * dy  # small + small: one (k, h, w) operation
            v = ((ak * sv) * dy + ov) - (bk * sv) * dx
            mask = shape.inside(u, v).reshape(-1).to(dtype)
            index = (first_pixel[which] + which * (height * width))[:, None] + window_pixels
            flat.scatter_(0, index.reshape(-1), mask)
    return out


# ------------------------------------------------------------------------ the procedural renderer
def render_sprites(
    shapes: np.ndarray,
    pos_x: np.ndarray,
    pos_y: np.ndarray,
    size: np.ndarray,
    angles: np.ndarray | float,
    margin: float,
    image_size: tuple[int, ...],
) -> torch.Tensor:
    """Masks ``(n, H, W)`` of sprites centred at ``margin + (1 - 2 margin) * position``."""
    span = 1.0 - 2.0 * margin
    centres = np.stack([margin + span * pos_x, margin + span * pos_y], axis=1)
    return rasterize(shapes, centres, size, angles, image_size, dtype=torch.float32)


class DSpritesRenderer(GroundTruthData):
    """Offline procedural dSprites: the factor grid of Matthey et al. (2017), drawn on demand.

    Factor values: shape in (square, ellipse, heart); scale ``linspace(0.5, 1, 6)``; orientation
    ``2 pi k / 40`` for ``k = 0..39`` (the original file spans [0, 2 pi] inclusive, so its first
    and last angles coincide; here they are all distinct); posX, posY ``linspace(0, 1, 32)``.

    Geometry (chosen to mimic the original look, not its exact pixels): one sprite unit is
    ``sprite_size = 0.32`` of the canvas side times the scale; a square has side 1, the ellipse
    semi-axes 0.6 x 0.3, the heart width 1.1 (so at scale 1 the square is 20 px of the 64 and
    sprites span about 0.15-0.45 of the canvas). The centre is at
    ``margin + pos * (1 - 2 margin)`` of the canvas with ``margin = 0.23``, so every sprite
    stays inside the canvas at any angle. posX moves the sprite to the **right** as it grows,
    posY moves it **down** (the row index grows); orientation turns it counter-clockwise on
    screen. Images are binary float32 ``(n, 1, 64, 64)``: a pixel is 1 when its centre is inside
    the shape. Deterministic: ``rng`` is not used.
    """

    name = "dsprites-procedural"
    factor_names = DSPRITES_FACTOR_NAMES
    factor_sizes = DSPRITES_FACTOR_SIZES
    observation_shape = (1, DSPRITES_IMAGE_SIZE, DSPRITES_IMAGE_SIZE)
    likelihood = "bernoulli"

    sprite_size = 0.32
    margin = 0.23
    scales = np.linspace(0.5, 1.0, 6)
    orientations = 2.0 * np.pi * np.arange(40) / 40
    positions = np.linspace(0.0, 1.0, 32)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """``(shape index, scale, angle in radians, posX, posY)`` per row."""
        f = self.check_factors(factors)
        return np.stack(
            [
                f[:, 0].astype(np.float64),
                self.scales[f[:, 1]],
                self.orientations[f[:, 2]],
                self.positions[f[:, 3]],
                self.positions[f[:, 4]],
            ],
            axis=1,
        )

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        f = self.check_factors(factors)
        masks = render_sprites(
            f[:, 0],
            self.positions[f[:, 3]],
            self.positions[f[:, 4]],
            self.sprite_size * self.scales[f[:, 1]],
            self.orientations[f[:, 2]],
            self.margin,
            self.observation_shape[1:],
        )
        return masks.unsqueeze(1)

    def iter_grid(self, batch_size: int = 8192) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """All ``(factors, images)`` of the grid in index order, ``batch_size`` at a time."""
        for start in range(0, self.num_combinations, batch_size):
            index = np.arange(start, min(start + batch_size, self.num_combinations))
            factors = self.factors_from_index(index)
            yield factors, self.sample_observations_from_factors(factors)

    def render_all(self, batch_size: int = 8192) -> torch.Tensor:
        """The whole grid, ``uint8 (737280, 1, 64, 64)`` in index order: **3 GiB**; rarely wise."""
        out = torch.empty((self.num_combinations, *self.observation_shape), dtype=torch.uint8)
        start = 0
        for _, images in self.iter_grid(batch_size):
            out[start : start + len(images)] = images.to(torch.uint8)
            start += len(images)
        return out


# ---------------------------------------------------------------------------------- the real file
DSPRITES_DIR = "dsprites"
DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_SOURCE = "https://github.com/deepmind/dsprites-dataset"
#: The columns of ``latents_classes`` / ``latents_values`` in the file.
FILE_FACTOR_NAMES = ("color", *DSPRITES_FACTOR_NAMES)
REQUIRED_KEYS = ("imgs", "latents_classes")
_READ_CHUNK = 4096  # images decompressed at a time when the file is compressed


def dsprites_path(root: str | os.PathLike | None = None) -> Path:
    """Where the file is expected: ``<data root>/dsprites/<DSPRITES_FILE>``."""
    return resolve_data_root(root) / DSPRITES_DIR / DSPRITES_FILE


def missing_file_message(path: Path, root: Path | None = None) -> str:
    env = os.environ.get(DATA_ROOT_ENV)
    env_note = f"currently {env!r}" if env else "currently unset"
    lines = [f"the dSprites file is missing: {path.absolute()}"]
    if root is not None:
        lines.append(f"Data root in use: {root} (absolute: {root.resolve()}).")
    lines += [
        f"Fix: download {DSPRITES_FILE} from the deepmind/dsprites-dataset repository "
        f"({DSPRITES_SOURCE}) and put it in <data root>/{DSPRITES_DIR}/, or point the data root "
        f"at a folder holding {DSPRITES_DIR}/{DSPRITES_FILE} with the `--data-root DIR` option "
        f"(root=... in Python) or the {DATA_ROOT_ENV} environment variable ({env_note}).",
        "The zoo never downloads it. Without the file, the offline dataset "
        "'dsprites-procedural' renders sprites on the same factor grid (an approximation).",
    ]
    return "\n".join(lines)


def _npy_member(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype, bool, int | None]:
    """Shape, dtype and Fortran order of ``key`` in an npz, and the file offset of its data when
    the member is stored uncompressed (so that it can be memory-mapped), else ``None``."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            header_length = fp.tell()
    if info.compress_type != zipfile.ZIP_STORED:
        return shape, dtype, fortran, None
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return shape, dtype, fortran, info.header_offset + 30 + name_length + extra_length + header_length


class DSpritesNPZ(GroundTruthData):
    """The real dSprites file (Matthey et al. 2017) as ground-truth data.

    The factor sizes are read from the file's ``latents_classes`` (so a smaller file in the same
    format works too), which must list the grid in mixed-radix order, last factor fastest (as the
    published file does); the colour column is dropped when it has a single value. The pickled
    ``metadata`` entry is never unpickled.

    ``imgs`` is read lazily, once, on the first observation request: memory-mapped when the npz
    member is stored uncompressed, otherwise (the published file is compressed) decompressed in
    chunks into a bit-packed array (1 bit per pixel: 360 MiB for the full grid instead of 2.8 GiB).
    Pixels are binary (nonzero -> 1).

    Args:
        path: the ``.npz`` file.
    """

    name = "dsprites"
    likelihood = "bernoulli"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(missing_file_message(self.path))
        if not zipfile.is_zipfile(self.path):
            raise ValueError(
                f"{self.path} is not an npz (zip) file; download it again from {DSPRITES_SOURCE}"
            )
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                keys = set(npz.files)
                missing = [k for k in REQUIRED_KEYS if k not in keys]
                if missing:
                    raise ValueError(
                        f"{self.path}: keys {missing} are missing (found {sorted(keys)}); is it the "
                        f"dSprites file? Download {DSPRITES_FILE} again from {DSPRITES_SOURCE}"
                    )
                classes = np.asarray(npz["latents_classes"]).astype(np.int64)
            shape, dtype, fortran, offset = _npy_member(self.path, "imgs")
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(
                f"{self.path} is not a readable npz file ({err}); download it again from {DSPRITES_SOURCE}"
            ) from err
        if classes.ndim != 2 or classes.shape[1] != len(FILE_FACTOR_NAMES) or len(classes) == 0:
            raise ValueError(
                f"{self.path}: latents_classes has shape {classes.shape}, expected (n, "
                f"{len(FILE_FACTOR_NAMES)}) with columns {FILE_FACTOR_NAMES}"
            )
        file_sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
        index = classes @ mixed_radix_strides(file_sizes)
        if len(classes) != math.prod(file_sizes) or not np.array_equal(index, np.arange(len(classes))):
            raise ValueError(
                f"{self.path}: latents_classes does not list the full factor grid {file_sizes} in "
                "order (last factor fastest); the file is not in the dSprites format"
            )
        if len(shape) != 3 or shape[0] != len(classes) or dtype not in (np.dtype(np.uint8), np.dtype(bool)):
            raise ValueError(
                f"{self.path}: imgs has shape {shape} and dtype {dtype}, expected ({len(classes)}, H, W) "
                "uint8 binary images"
            )
        self._file_sizes = file_sizes
        self._keep = [i for i, s in enumerate(file_sizes) if not (FILE_FACTOR_NAMES[i] == "color" and s == 1)]
        self.factor_names = tuple(FILE_FACTOR_NAMES[i] for i in self._keep)
        self.factor_sizes = tuple(file_sizes[i] for i in self._keep)
        self.observation_shape = (1, int(shape[1]), int(shape[2]))
        self._images_shape = tuple(int(s) for s in shape)
        self._images_dtype = dtype
        self._images_fortran = bool(fortran)
        self._images_offset = offset
        self._images: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self.storage: str | None = None  # "memmap" or "packed" once the images are loaded

    def _file_index(self, factors: np.ndarray) -> np.ndarray:
        full = np.zeros((len(factors), len(self._file_sizes)), dtype=np.int64)
        full[:, self._keep] = factors
        return full @ mixed_radix_strides(self._file_sizes)

    def load_images(self) -> np.ndarray:
        """The images, memory-mapped (``(N, H, W)``) or bit-packed (``(N, H, ceil(W / 8))``)."""
        if self._images is not None:
            return self._images
        n, height, width = self._images_shape
        if self._images_offset is not None and not self._images_fortran:
            self._images = np.memmap(
                self.path,
                dtype=self._images_dtype,
                mode="r",
                offset=self._images_offset,
                shape=(n, height, width),
            )
            self.storage = "memmap"
            return self._images
        packed = np.empty((n, height, (width + 7) // 8), dtype=np.uint8)
        if self._images_fortran:  # not the published layout: read it whole
            with np.load(self.path, allow_pickle=False) as npz:
                packed[:] = np.packbits(np.asarray(npz["imgs"]) != 0, axis=-1)
        else:
            per_image = height * width * self._images_dtype.itemsize
            with zipfile.ZipFile(self.path) as archive, archive.open("imgs.npy") as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    np.lib.format.read_array_header_1_0(fp)
                else:
                    np.lib.format.read_array_header_2_0(fp)
                for start in range(0, n, _READ_CHUNK):
                    count = min(_READ_CHUNK, n - start)
                    buffer = fp.read(count * per_image)
                    if len(buffer) != count * per_image:
                        raise ValueError(f"{self.path}: imgs is truncated; download the file again")
                    chunk = np.frombuffer(buffer, dtype=self._images_dtype).reshape(count, height, width)
                    packed[start : start + count] = np.packbits(chunk != 0, axis=-1)
        self._images = packed
        self.storage = "packed"
        return packed

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        index = self._file_index(self.check_factors(factors))
        images = self.load_images()
        width = self._images_shape[2]
        if self.storage == "packed":
            pixels = np.unpackbits(images[index], axis=-1, count=width)
        else:
            pixels = (np.asarray(images[index]) != 0).astype(np.uint8)
        return torch.from_numpy(pixels).unsqueeze(1).to(torch.float32)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """The file's ``latents_values`` (scale, angle in radians, positions, ...) per row; the
        class index when the file has no ``latents_values``."""
        f = self.check_factors(factors)
        if self._values is None:
            with np.load(self.path, allow_pickle=False) as npz:
                if "latents_values" not in npz.files:
                    return f.astype(np.float64)
                self._values = np.asarray(npz["latents_values"], dtype=np.float64)
        return self._values[self._file_index(f)][:, self._keep]


_OPENED: dict[tuple[str, int, int], DSpritesNPZ] = {}


def open_dsprites(root: str | os.PathLike | None = None) -> DSpritesNPZ:
    """The :class:`DSpritesNPZ` of ``<data root>/dsprites/``, opened once per process and file."""
    data_root = resolve_data_root(root)
    path = data_root / DSPRITES_DIR / DSPRITES_FILE
    if not path.is_file():
        raise FileNotFoundError(missing_file_message(path, data_root))
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _OPENED:
        _OPENED.clear()  # at most one copy of the images in memory
        _OPENED[key] = DSpritesNPZ(path)
    return _OPENED[key]


# ----------------------------------------------------------------------------------------- loaders
def split_size(split: str, n: int | None, train: int, test: int) -> int:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n is not None:
        return int(n)
    return train if split == "train" else test


def load_dsprites(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "none",
    seed: int = 0,
    download: bool = False,
    n: int | None = None,
) -> GroundTruthDataset:
    """The real dSprites: a seeded subset (20,000 train / 2,000 test, disjoint) of the file's grid.

    ``binarize`` and ``seed`` are ignored (binary images; subsets drawn with ``SUBSET_SEED``);
    ``download`` is not supported (see :func:`missing_file_message`). ``n`` overrides the size.
    """
    size = split_size(split, n, DSPRITES_TRAIN_SIZE, DSPRITES_TEST_SIZE)
    return open_dsprites(root).to_dataset(size, split, seed=SUBSET_SEED, binarize="none", name="dsprites")


def load_dsprites_procedural(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "none",
    seed: int = 0,
    download: bool = False,
    n: int | None = None,
) -> GroundTruthDataset:
    """Procedural dSprites (offline): 20,000 train / 2,000 test, disjoint, rendered on loading.

    ``root``, ``binarize``, ``seed`` and ``download`` are ignored (see the module docstring).
    """
    size = split_size(split, n, DSPRITES_TRAIN_SIZE, DSPRITES_TEST_SIZE)
    return DSpritesRenderer().to_dataset(size, split, seed=SUBSET_SEED, binarize="none")
