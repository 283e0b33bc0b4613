"""Checks of the arguments that every layer takes: counts (samples, steps, examples, batch sizes).

One check, one message, wherever a count is taken: ``k=2.5`` or ``samples=0`` is refused naming
the argument, instead of failing deep inside ``repeat`` or drawing one sample where Pixyz is given 0.
"""

from __future__ import annotations

import operator
from typing import Any


def check_count(value: Any, what: str) -> int:
    """``value`` as an int when it is an integer >= 1 (an int, or a NumPy or tensor integer), else a
    ``ValueError`` naming ``what`` it counts."""
    try:
        count = operator.index(value)
    except TypeError:
        count = 0
    if isinstance(value, bool) or count < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return count


__all__ = ["check_count"]
