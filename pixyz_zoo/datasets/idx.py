"""The project's own reader for idx files (the format of MNIST and Fashion-MNIST).

An idx file is a 4-byte magic number, one big-endian ``uint32`` per dimension, then the data in
row-major order. The magic number is two zero bytes, a type code (``0x08`` = unsigned byte, ...)
and the number of dimensions: ``0x00000803`` (2051) for a stack of images, ``0x00000801`` (2049)
for a vector of labels. Files are read gzip-compressed (``*-ubyte.gz``) or, when the ``.gz`` is
absent, uncompressed (same name without ``.gz``).

Every problem (truncated file, bad gzip stream, wrong magic number, wrong size) raises a
``ValueError`` that names the file and says to download or replace it. :func:`check_md5` compares
a file with its known checksum. :func:`load_idx` reads each file once per process: decoded
arrays are cached, keyed on the file's path, modification time and size.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

#: idx type code -> numpy dtype (big-endian, as stored in the file).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)

_REPLACE_HINT = (
    "the file is truncated or corrupt: delete it and download it again (`--download`, "
    "i.e. download=True) or replace it with a good copy"
)


class ChecksumError(ValueError):
    """A file whose md5 differs from the known one."""


def _describe_magic(magic: int) -> str:
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    kind = IDX_DTYPES[type_code].name if type_code in IDX_DTYPES else f"unknown type 0x{type_code:02x}"
    return f"{magic} = 0x{magic:08x}: {kind}, {ndim} dimension(s)"


def parse_idx(
    data: bytes, source: str | os.PathLike = "<bytes>", expected_magic: int | None = None
) -> np.ndarray:
    """Decode the bytes of an (uncompressed) idx file into an array of native byte order.

    Args:
        data: the whole file content.
        source: file name used in error messages.
        expected_magic: when given, the magic number the file must have (e.g. ``IMAGES_MAGIC``).
    """
    if len(data) < 4:
        raise ValueError(f"{source}: only {len(data)} bytes, too short for an idx header; {_REPLACE_HINT}")
    (magic,) = struct.unpack(">I", data[:4])
    zero, type_code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{source}: magic number 0x{magic:08x} is not an idx header (expected two zero "
            f"bytes, a type code in {[hex(c) for c in IDX_DTYPES]} and a dimension count); "
            f"{_REPLACE_HINT}"
        )
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(
            f"{source}: magic number {_describe_magic(magic)}, expected "
            f"{_describe_magic(expected_magic)}; is it the wrong file (images and labels swapped)? "
            f"If not, {_REPLACE_HINT}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{source}: header announces {ndim} dimensions but the file has only {len(data)} "
            f"bytes; {_REPLACE_HINT}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[type_code]
    count = math.prod(dims)
    expected = count * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "missing" if actual < expected else "unexpected trailing"
        raise ValueError(
            f"{source}: dimensions {tuple(dims)} need {expected} data bytes, found {actual} "
            f"({abs(expected - actual)} bytes {what}); {_REPLACE_HINT}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else array


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an idx file, gzip-compressed when its name ends in ``.gz``, with no caching."""
    path = Path(path)
    with open(path, "rb") as handle:  # FileNotFoundError passes through unchanged
        raw = handle.read()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: cannot decompress the gzip data ({err}); {_REPLACE_HINT}") from err
    return parse_idx(raw, path, expected_magic)


def find_idx_file(directory: str | os.PathLike, name: str) -> Path | None:
    """``directory/name`` if it exists, else its uncompressed copy (no ``.gz``), else None."""
    directory = Path(directory)
    candidates = [directory / name]
    if name.endswith(".gz"):
        candidates.append(directory / name[: -len(".gz")])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def file_md5(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex md5 digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`ChecksumError` (a ``ValueError``) when ``path``'s md5 is not ``expected``."""
    actual = file_md5(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: md5 is {actual}, expected {expected.lower()}; the file is corrupt, truncated "
            "or a different version: delete it and download it again (`--download`, i.e. "
            "download=True) or replace it with a good copy"
        )


_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_CACHE_SIZE = 8  # the four files of MNIST and of Fashion-MNIST


def load_idx(
    path: str | os.PathLike, expected_magic: int | None = None, md5: str | None = None
) -> np.ndarray:
    """Read an idx file once per process (checking its md5 first when ``md5`` is given).

    The result is cached on (path, modification time, size, magic, md5) and returned read-only:
    copy it before changing it.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, expected_magic, md5)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if md5 is not None:
        check_md5(path, md5)
    array = read_idx(path, expected_magic)
    array.flags.writeable = False
    _CACHE[key] = array
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return array


def clear_cache() -> None:
    """Forget every decoded file."""
    _CACHE.clear()
