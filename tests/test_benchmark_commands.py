"""The benchmark records' commands and the GPU checks are ones their scripts accept.

A record is re-runnable only while the command it shows still parses, and ``cuda_checks.sh`` runs
only where a GPU is lent: so each documented command is parsed here, by the script's own parser
(``main`` stops right after ``parse_args``), and every test that needs a GPU must be one that
``cuda_checks.sh`` selects.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from pathlib import Path

import pytest

from tests.test_benchmarks_scripts import load_script
from tests.test_readme import check_cli_command, cli_commands_in, joined

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
CUDA_CHECKS = BENCHMARKS / "cuda_checks.sh"
RECORDS = sorted(BENCHMARKS.glob("*.md"))
SCRIPT = re.compile(r"python (?:\S+/)?benchmarks/(\w+)\.py([^`\n#]*)")


def documented_scripts() -> list[tuple[str, tuple[str, ...]]]:
    """``(record, (script name, its arguments))`` for every benchmark command of the records."""
    return [(path.name, m.groups()) for path in RECORDS for m in SCRIPT.finditer(joined(path.read_text()))]


def documented_cli() -> list[tuple[str, list[str]]]:
    return [(path.name, words) for path in RECORDS for words in cli_commands_in(path.read_text())]


class Parsed(Exception):
    """Raised by the patched ``parse_args``: the script's arguments parsed, nothing run."""


def parse_with_script(monkeypatch, name: str, argv: list[str]) -> argparse.Namespace:
    real = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    module = load_script(name)
    with pytest.raises(Parsed) as parsed:
        module.main(argv)  # an unknown flag or a bad value exits here instead
    return parsed.value.args[0]


def cuda_check_commands() -> list[tuple[str, list[str]]]:
    """``record NAME SCRIPT ARGS...`` lines of cuda_checks.sh, with the flags ``record`` adds."""
    commands = []
    for line in joined(CUDA_CHECKS.read_text()).splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["record"] and len(words) > 2:
            commands.append(
                (words[2].removesuffix(".py"), [*words[3:], "--device", "cuda", "--out", "x.json"])
            )
    return commands


def test_the_records_and_checks_have_the_commands_these_tests_read():
    assert len(documented_scripts()) >= 20 and len(documented_cli()) >= 8
    assert len(cuda_check_commands()) == 4


@pytest.mark.parametrize(
    "record, match", documented_scripts(), ids=lambda v: v if isinstance(v, str) else v[0]
)
def test_every_documented_benchmark_command_parses(monkeypatch, record, match):
    name, rest = match
    assert (BENCHMARKS / f"{name}.py").is_file(), f"{record} runs benchmarks/{name}.py, which is gone"
    parse_with_script(monkeypatch, name, shlex.split(rest))


@pytest.mark.parametrize(
    "record, arguments", documented_cli(), ids=lambda v: v if isinstance(v, str) else v[0]
)
def test_every_documented_pixyz_zoo_command_in_the_records_parses(record, arguments):
    check_cli_command(arguments)


@pytest.mark.parametrize("name, argv", cuda_check_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_cuda_checks_run_their_benchmarks_with_flags_the_scripts_accept(monkeypatch, name, argv):
    args = parse_with_script(monkeypatch, name, argv)
    assert args.device == "cuda"


def needs_a_gpu(function: ast.FunctionDef) -> bool:
    """Skipped without CUDA: ``@requires_cuda`` or ``skipif(not torch.cuda.is_available(), ...)``."""
    for decorator in function.decorator_list:
        text = ast.unparse(decorator)
        if text == "requires_cuda" or ("skipif" in text and "not torch.cuda.is_available()" in text):
            return True
    return False


def test_every_test_that_needs_a_gpu_is_one_the_cuda_checks_select():
    """cuda_checks.sh runs ``pytest -k cuda`` on the files it names: a GPU test elsewhere, or
    without ``cuda`` in its name, would be skipped here and never run there."""
    listed = set(re.findall(r"tests/(test_\w+\.py)", CUDA_CHECKS.read_text()))
    gpu_tests = [
        (path.name, node.name)
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test") and needs_a_gpu(node)
    ]
    assert len(gpu_tests) >= 13
    assert [t for t in gpu_tests if t[0] not in listed or "cuda" not in t[1]] == []
