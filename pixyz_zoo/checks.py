"""Checks of the arguments that every layer takes: counts (samples, steps, examples, batch sizes),
epochs and seeds, non-negative numbers, registered names; and the one way an error is re-raised once
diagnosed.

One check, one message, wherever a count is taken: ``k=2.5`` or ``samples=0`` is refused naming
the argument, instead of failing deep inside ``repeat`` or drawing one sample where Pixyz is given 0.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Iterable
from typing import Any, NoReturn


def check_integer(value: Any, what: str, at_least: int) -> int:
    """``value`` as an int when it is an integer >= ``at_least`` (an int, or a NumPy or tensor
    integer), else a ``ValueError`` naming ``what`` it is."""
    try:
        number = operator.index(value)
    except TypeError:
        number = at_least - 1
    if isinstance(value, bool) or number < at_least:
        raise ValueError(f"{what} must be an integer >= {at_least}, got {value!r}")
    return number


def check_count(value: Any, what: str) -> int:
    """``value`` as an int when it is an integer >= 1, else a ``ValueError`` naming ``what`` it counts."""
    return check_integer(value, what, 1)


def check_non_negative(value: Any, what: str) -> float:
    """``value`` as a float when it is a finite number >= 0, else a ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def check_positive(value: Any, what: str) -> float:
    """``value`` as a float when it is a finite number > 0 (a step size, a learning rate, a
    half-width), else a ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{what} must be a number > 0, got {value!r}")
    return float(value)


def reraise_explained(error: Exception, problem: str | None) -> NoReturn:
    """Raise ``ValueError(problem)`` from ``error`` when a diagnosis made after ``error`` (PyTorch's
    broadcasting error, say) found what the user got wrong; else ``error`` itself, unchanged."""
    if problem is None:
        raise error
    raise ValueError(problem) from error


__all__ = ["check_count", "check_integer", "check_non_negative", "check_positive", "reraise_explained"]


def fold_name(text: str) -> str:
    """A registered name (model, dataset, experiment) as a user may type it: any case, ``_`` or ``-``."""
    return str(text).strip().lower().replace("_", "-")


def nearest_names(name: str, known: Iterable[str]) -> list[str]:
    """The registered names ``name`` may mean: the one it folds to (``VAE``, ``beta_vae``), else up to
    three near misses (``vea``: ``vae``)."""
    folded = {fold_name(k): k for k in known}
    if fold_name(name) in folded:
        return [folded[fold_name(name)]]
    return [folded[c] for c in difflib.get_close_matches(fold_name(name), list(folded), n=3, cutoff=0.6)]


def did_you_mean(name: Any, known: Iterable[str]) -> str:
    """``did you mean 'vae'?`` for the registered names ``name`` may mean (:func:`nearest_names`);
    empty when there is none."""
    close = nearest_names(name, known) if isinstance(name, str) else []
    return f"did you mean {' or '.join(map(repr, close))}?" if close else ""


def unknown_name(kind: str, name: Any, known: Iterable[str]) -> str:
    """The message for an unknown registered name: ``unknown model 'vea' (did you mean 'vae'?);
    available: ...``."""
    known = sorted(known)
    hint = did_you_mean(name, known)
    return f"unknown {kind} {name!r}{f' ({hint})' if hint else ''}; available: {', '.join(known)}"
