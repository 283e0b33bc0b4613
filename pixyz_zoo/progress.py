"""The progress bar class: tqdm's notebook widget where Jupyter widgets are installed, plain text
otherwise.

``tqdm.auto`` picks the widget inside a Jupyter kernel and, when ``ipywidgets`` is missing, warns
"IProgress not found" into every notebook that imports the zoo; here the plain text bar is used
instead, silently.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
