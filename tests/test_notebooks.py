"""Every notebook runs top to bottom in the smoke setting (PIXYZ_ZOO_SMOKE=1: tiny data and epochs),
and the committed notebooks (outputs of full runs) say only what their outputs show."""

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RECORDS = ROOT / "benchmarks" / "results"
#: The recorded results of the full runs whose outputs the experiment notebooks show.
RECORDED = {
    "01_beta_vae": "beta_vae_disentanglement.json",
    "02_jmvae": "jmvae_mnist.json",
    "03_attribute_mnist": "attribute_mnist.json",
    "04_multimodal_benchmark": "multimodal_benchmark.json",
    "05_iterative_inference": "iterative_inference.json",
    "06_multimodal_iterative_inference": "iterative_multimodal.json",
    "07_mfm": "mfm.json",
    "08_jmvae_images": "jmvae_images.json",
}
#: An absolute path of a machine (POSIX home, system and temporary folders, a Windows drive).
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:home|root|work|tmp|Users|usr|opt|var|mnt|private)/|\b[A-Z]:\\")
#: A decimal number in prose: sign (ASCII or Unicode minus), digits, decimals, optional percent.
QUOTED = re.compile(r"(?<![\w.])([-−]?)(\d+(?:,\d{3})*)\.(\d+)(%?)(?![\d.]\d)")
SHOWN = re.compile(r"[-−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _output_texts(notebook) -> list[str]:
    texts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                texts += [
                    output.data[k] for k in ("text/plain", "text/markdown", "text/html") if k in output.data
                ]
            elif output.output_type == "error":
                texts += [output.ename, output.evalue, *output.traceback]
    return texts


def _shown_numbers(notebook) -> list[float]:
    return [float(m.group().replace("−", "-")) for t in _output_texts(notebook) for m in SHOWN.finditer(t)]


def _quoted_numbers(markdown: str):
    """``(text, value, decimals)`` of each decimal number in prose (LaTeX and arXiv ids left out);
    a percentage is given as a fraction with two more decimals."""
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|arXiv \S+", " ", markdown, flags=re.S)
    for match in QUOTED.finditer(prose):
        sign, whole, decimals, percent = match.groups()
        value = float(("-" if sign else "") + whole.replace(",", "") + "." + decimals)
        if percent:
            yield match.group(), value / 100, len(decimals) + 2
        else:
            yield match.group(), value, len(decimals)


def _markdown_tables(notebook) -> list[list[list[str]]]:
    """The Markdown tables displayed in the outputs: rows of cells, header first."""
    tables = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown", "")
            lines = [
                line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")
            ]
            if lines:
                tables.append([[c.strip() for c in line.strip("|").split("|")] for line in lines])
    return tables


def _leaves(value) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return []


def _stdout(notebook, contains: str) -> str:
    cell = next(c for c in notebook.cells if c.cell_type == "code" and contains in c.source)
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_setting(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXYZ_ZOO_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = _read(path)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
    assert not any("IProgress not found" in t for t in _output_texts(notebook))


def test_committed_notebooks_carry_outputs_of_a_full_run():
    for path in NOTEBOOKS:
        notebook = _read(path)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{path.name} is not executed"
        text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
        assert "n=256" not in text, f"{path.name} carries outputs of a smoke run"
        assert "setting: smoke" not in text, f"{path.name} carries outputs of a smoke run"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_figures_are_drawn_not_named(path):
    """A notebook executed with a non-inline backend (MPLBACKEND=Agg) keeps only the figures'
    names, "<Figure size 1000x320 with 2 Axes>": every figure it shows must come with its image."""
    for cell in _read(path).cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = output.get("data", {}).get("text/plain", "")
            if text.startswith("<Figure size"):
                assert "image/png" in output.data, f"{path.name}: {text} without its image"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_outputs_show_no_machine_paths_or_widget_warnings(path):
    for text in _output_texts(_read(path)):
        assert not MACHINE_PATH.search(text), f"{path.name} shows a path of the machine: {text[:300]!r}"
        assert "IProgress not found" not in text, f"{path.name} shows tqdm's widget warning"


def _unshown_numbers(notebook) -> list[str]:
    """The decimal numbers of the prose that no output shows at the precision quoted."""
    shown = _shown_numbers(notebook)
    return [
        text
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for text, value, decimals in _quoted_numbers(cell.source)
        if not any(abs(round(s, decimals) - value) < 0.5 * 10**-decimals for s in shown)
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_numbers_quoted_in_the_text_are_shown_in_the_outputs(path):
    """Every decimal number of the prose equals, at the precision quoted, a number the outputs show."""
    missing = _unshown_numbers(_read(path))
    assert not missing, f"{path.name} quotes numbers none of its outputs show: {missing}"


def test_the_quoted_number_check_finds_numbers_no_output_shows():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("Loss 124.7 vs $1.5$, 39.8% and −459.87 nats (arXiv 1611.01891)."),
        nbformat.v4.new_code_cell("print(...)"),
    ]
    notebook.cells[1].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="0.398 -459.866 124.64\n")
    ]
    assert _unshown_numbers(notebook) == ["124.7"]  # 124.64 is 124.6 at one decimal
    notebook.cells[1].outputs[0].text += "124.66"
    assert _unshown_numbers(notebook) == []


@pytest.mark.parametrize("stem", sorted(RECORDED))
def test_tables_shown_are_the_recorded_full_run_results(stem):
    """Every number in the Markdown tables of the outputs is a number of the recorded full run."""
    notebook = _read(ROOT / "notebooks" / f"{stem}.ipynb")
    recorded = _leaves(json.loads((RECORDS / RECORDED[stem]).read_text()))
    tables = _markdown_tables(notebook)
    assert tables, f"{stem} displays no table"
    cells = [cell for table in tables for row in table[1:] for cell in row[1:]]
    numbers = [c for c in cells if re.fullmatch(r"-?\d+(\.\d+)?", c)]
    assert len(numbers) >= 8
    for cell in numbers:
        decimals = len(cell.split(".")[1]) if "." in cell else 0
        assert any(abs(round(r, decimals) - float(cell)) < 0.5 * 10**-decimals for r in recorded), (
            stem,
            cell,
        )


def test_notebook_00_finding_is_computed_from_its_table():
    notebook = _read(ROOT / "notebooks" / "00_vae_as_a_probabilistic_program.ipynb")
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "def kl_finding" in c.source)
    printed = _stdout(notebook, "def kl_finding")
    rows = {
        m.group(1): {"kl": float(m.group(2)), "rec": float(m.group(3))}
        for m in re.finditer(r"^(VAE \(beta=1\)|beta-VAE \(beta=4\))\s+(\S+)\s+(\S+)", printed, re.M)
    }
    function = next(n for n in ast.parse(cell.source).body if getattr(n, "name", "") == "kl_finding")
    namespace: dict = {}
    exec(ast.get_source_segment(cell.source, function), namespace)
    sentence = namespace["kl_finding"](rows["VAE (beta=1)"], rows["beta-VAE (beta=4)"])
    assert sentence in printed
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    if rows["beta-VAE (beta=4)"]["kl"] == 0:  # a collapsed posterior is not "closer to the prior"
        assert "collapsed onto the prior" in sentence and "closer to the prior" not in text


def test_experiment_notebooks_findings_follow_the_recorded_numbers():
    """The finding sentences the notebooks print are what the experiments' code computes from the
    recorded numbers."""
    from pixyz_zoo.experiments.beta_vae import sweep_trend
    from pixyz_zoo.experiments.jmvae import _findings
    from pixyz_zoo.experiments.multimodal_benchmark import findings

    stems = ("01_beta_vae", "02_jmvae", "04_multimodal_benchmark")
    notebooks = {stem: _read(ROOT / "notebooks" / f"{stem}.ipynb") for stem in stems}
    records = {stem: json.loads((RECORDS / RECORDED[stem]).read_text()) for stem in stems}

    shown = "\n".join(_output_texts(notebooks["01_beta_vae"]))
    for data in records["01_beta_vae"]["datasets"].values():
        sweep = [m for m in data["models"].values() if m["beta"] is not None]
        assert sweep_trend([m["beta"] for m in sweep], sweep)["sentence"] in shown

    printed = _stdout(notebooks["02_jmvae"], 'results["findings"].items()')
    recorded = records["02_jmvae"]
    for key, finding in _findings(recorded["table_1"], recorded["step_sweep"]).items():
        assert f"{key}: {'holds' if finding['holds'] else 'does NOT hold'}" in printed

    printed = _stdout(notebooks["04_multimodal_benchmark"], 'print(results["findings"]["text"])')
    assert findings(records["04_multimodal_benchmark"]["summary"])["text"] in printed


def test_notebook_05_claims_follow_the_recorded_numbers():
    """The claim sentences notebook 05 prints are what ``claims`` computes from the recorded full run."""
    from pixyz_zoo.experiments.iterative_inference import claims_from_results

    notebook = _read(ROOT / "notebooks" / "05_iterative_inference.ipynb")
    printed = _stdout(notebook, 'results["claims"].items()')
    record = json.loads((RECORDS / RECORDED["05_iterative_inference"]).read_text())
    found = claims_from_results(record)
    assert set(found) == set(record["claims"])
    for key, claim in found.items():
        assert f"{key}: {claim['status']}" in printed
        assert claim["sentence"].replace("**", "") in printed


def test_notebook_06_statements_follow_the_recorded_numbers():
    """The hypotheses, the orderings of the slides' tables and the variants' sentences notebook 06
    shows are what ``iterative_multimodal`` computes from the recorded full run."""
    from pixyz_zoo.experiments import iterative_multimodal as im

    notebook = _read(ROOT / "notebooks" / "06_multimodal_iterative_inference.ipynb")
    shown = "\n".join(_output_texts(notebook))
    record = json.loads((RECORDS / RECORDED["06_multimodal_iterative_inference"]).read_text())
    for hypothesis in im.hypotheses(record["rows"]).values():
        assert hypothesis["sentence"] in shown
    for table in im.SLIDE_TABLES.values():
        assert im.table_ordering(table, record["rows"])["text"] in shown
    variants = record["variants"]
    for finding in im.variant_findings(variants["summary"], variants["default"]).values():
        assert finding["sentence"] in shown


def test_notebook_07_statements_follow_the_recorded_numbers():
    """The findings notebook 07 shows (UM/MM, factor swapping, the paper's orderings, missing modalities,
    interpretation) are what ``mfm.findings_from_results`` computes from the recorded full run."""
    from pixyz_zoo.experiments.mfm import findings_from_results

    notebook = _read(ROOT / "notebooks" / "07_mfm.ipynb")
    shown = "\n".join(_output_texts(notebook))
    record = json.loads((RECORDS / RECORDED["07_mfm"]).read_text())
    for finding in findings_from_results(record).values():
        assert finding["sentence"] in shown


def test_notebook_08_findings_follow_the_recorded_numbers():
    """The paper's statements notebook 08 prints (sec. 4.6 and JMVAE-GAN's sharpness) are what
    ``jmvae_images.findings_from_results`` computes from the recorded full run."""
    from pixyz_zoo.experiments.jmvae_images import findings_from_results

    notebook = _read(ROOT / "notebooks" / "08_jmvae_images.ipynb")
    printed = _stdout(notebook, 'results["findings"].items()')
    record = json.loads((RECORDS / RECORDED["08_jmvae_images"]).read_text())
    found = findings_from_results(record)
    assert set(found) == set(record["findings"])
    for key, finding in found.items():
        assert f"{key}: {'holds' if finding['holds'] else 'does NOT hold'}" in printed
        assert finding["sentence"] in printed
