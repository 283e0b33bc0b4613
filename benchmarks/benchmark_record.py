"""What every benchmark script does with its record: the command that made it, and the JSON file."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any


def command_line(argv: list[str] | None) -> str:
    """The command that made the record: the script's command line (``argv`` None: run as a script),
    else ``main(argv)`` (called from Python, e.g. by the tests)."""
    if argv is not None:
        return "main(" + repr(argv) + ")"
    return "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def write_record(result: dict[str, Any], out: str | Path) -> Path:
    """Write ``result`` as indented JSON to ``out`` (its folder made if needed); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out
