"""The README's examples: its Python runs as written, and its commands are ones the CLI accepts."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest

from pixyz_zoo.cli import build_parser
from pixyz_zoo.experiments import EXPERIMENTS, _load_all
from pixyz_zoo.models import MODELS

README = Path(__file__).resolve().parents[1] / "README.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


CLI_COMMAND = re.compile(r"pixyz-zoo ((?:train|evaluate|graph|list|reproduce)\b[^`\n#'\"]*)")


def joined(text: str) -> str:
    """``text`` with its shell line continuations joined."""
    return re.sub(r"\\\n\s*", " ", text)


def without_settings(words: list[str]) -> list[str]:
    """A command's words without its environment settings (``PIXYZ_ZOO_DATA=...``)."""
    return [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]


def cli_commands_in(text: str) -> list[list[str]]:
    """The arguments of every ``pixyz-zoo`` command in ``text`` that ends its line or code span."""
    return [without_settings(shlex.split(m.group(1))) for m in CLI_COMMAND.finditer(joined(text))]


def cli_commands() -> list[list[str]]:
    """Every ``pixyz-zoo`` command of the README's shell blocks (torchrun's included) and of its
    text's code spans (which may wrap), as arguments."""
    spans = re.findall(r"`((?:pixyz-zoo|torchrun) [^`]+)`", README.read_text())
    commands = []
    for block in [*code_blocks("bash"), *(span.replace("\n", " ") for span in spans)]:
        for line in joined(block).splitlines():
            words = without_settings(shlex.split(line, comments=True))
            if "pixyz-zoo" in words:
                commands.append(words[words.index("pixyz-zoo") + 1 :])
            elif words[:1] == ["torchrun"]:
                commands.append(words[words.index("pixyz_zoo") + 1 :])
    return commands


def notebook_commands() -> list[tuple[str, list[str]]]:
    """Every ``pixyz-zoo`` command the notebooks show (markdown, or a code cell's comment or string)."""
    return [
        (path.stem, words)
        for path in sorted((README.parent / "notebooks").glob("*.ipynb"))
        for cell in json.loads(path.read_text())["cells"]
        for words in cli_commands_in("".join(cell["source"]))
    ]


def test_the_readme_has_the_examples_these_tests_read():
    assert len(code_blocks("python")) == 2
    assert len(cli_commands()) >= 23
    assert len(notebook_commands()) >= 20


def exact_parser() -> argparse.ArgumentParser:
    """The CLI's parser, taking flags only as spelled in full (not a prefix of a renamed flag)."""
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for sub in action.choices.values():
            sub.allow_abbrev = False
    return parser


def check_cli_command(arguments: list[str]) -> None:
    """``arguments`` parse, and name a registered model or experiment (and a dataset it accepts)."""
    args = exact_parser().parse_args(arguments)  # an unknown flag or choice exits here
    if args.command == "train":
        assert args.model in MODELS or (args.model is None and args.resume is not None)
    if args.command == "reproduce":
        _load_all()
        assert args.experiment in EXPERIMENTS
        if args.dataset is not None:
            assert args.dataset in EXPERIMENTS[args.experiment].datasets


@pytest.mark.parametrize("arguments", cli_commands(), ids=" ".join)
def test_every_readme_command_is_one_the_cli_accepts(arguments):
    check_cli_command(arguments)


@pytest.mark.parametrize(
    "notebook, arguments", notebook_commands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_notebook_command_is_one_the_cli_accepts(notebook, arguments):
    check_cli_command(arguments)


def test_the_readme_python_example_runs_and_prints_the_terms(monkeypatch, tmp_path):
    source = code_blocks("python")[0]
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(source, str(README), "exec"), {"__name__": "readme"})
    out = printed.getvalue()
    assert r"p(x,z) = p(x|z)p(z)" in out
    terms = [line for line in out.splitlines() if re.match(r"\s+-?\d+\.\d{3}  ", line)]
    assert len(terms) == 2 and r"\log p(x|z)" in terms[0] and "4.0 D_{KL}" in terms[1]
    assert list(tmp_path.iterdir()) == []  # the example writes no file


def test_the_readme_example_of_ones_own_data_trains_and_generates(monkeypatch, tmp_path):
    source = code_blocks("python")[1]
    monkeypatch.chdir(tmp_path)
    printed, progress = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(progress):
        exec(compile(source, str(README), "exec"), {"__name__": "readme"})
    assert "torch.Size([4, 1, 16, 16])" in printed.getvalue()
    assert "epoch 2/2: train_loss" in printed.getvalue() + progress.getvalue()  # two epochs trained
    assert list(tmp_path.iterdir()) == []
