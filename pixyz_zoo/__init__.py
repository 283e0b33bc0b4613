"""pixyz-zoo: deep generative models written as probabilistic programs with Pixyz.

Pixyz caches distribution parameters keyed on tensor identity. With the cache on, training
twice on the same tensor fails and parameters go stale after an optimiser step, so it is
switched off here, before anything imports ``pixyz.distributions``.
"""

import sys as _sys
import warnings as _warnings

import pixyz.utils as _pixyz_utils

if "pixyz.distributions" in _sys.modules:
    _warnings.warn(
        "pixyz.distributions was imported before pixyz_zoo, so Pixyz's parameter cache is still on "
        "for distributions defined by then (stale parameters, 'backward through the graph a second "
        "time'). Fix: import pixyz_zoo first, or call pixyz.utils.set_cache_maxsize(0) before "
        "importing pixyz.distributions.",
        stacklevel=2,
    )
_pixyz_utils.set_cache_maxsize(0)

from pixyz_zoo.modalities import Modality  # noqa: E402

__all__ = ["Modality", "__version__"]
__version__ = "0.1.0"
