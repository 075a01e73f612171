"""The HTML report page: self-contained, every section, the best-of-row rule, warnings, CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_fake import fake_results

from oodbench.cli import cli
from oodbench.report.html import CSP, REPORT_FILENAME, write_report

ODIN_EDGE = {"odin": {"temperature": 1000, "epsilon": 0.0}}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two models x 3 detectors x 2 OOD sets x 2 seeds; odin tuned with degenerate picks."""
    return fake_results(
        tmp_path / "runs",
        detectors=["msp", "odin", "energy"],
        sets=2,
        n=200,
        seeds=2,
        models=("cross_entropy", "joint"),
        params=ODIN_EDGE,
    )


def _table(page: str, anchor: str) -> str:
    """The HTML of the table following the heading with id `anchor`."""
    start = page.index(f'id="{anchor}"')
    return page[start : page.index("</table>", start)]


def test_page_is_one_offline_file_with_every_section(folder: Path):
    page = write_report(folder).read_text(encoding="utf-8")
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#39;")}">' in page
    assert "default-src &#39;none&#39;" in page
    # Nothing to fetch: no script, no stylesheet link, every src/href a data: URI or an anchor.
    assert "<script" not in page and "<link" not in page
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(ref.startswith(("data:image/svg+xml;base64,", "#")) for ref in refs)
    assert not re.search(r"https?://", page)  # the SVGs' xmlns are inside base64
    for section in ("summary", "tables", "figures", "comparisons", "provenance"):
        assert f'<section id="{section}">' in page
    # 2 models x 2 seeds x 2 pairs = 8 groups of 3 small multiples, + the legend.
    assert page.count("<img ") == 8 * 3 + 1
    assert page.count("<details") == 8 + 1 and page.count("<details>") == 1  # provenance closed
    assert "0.0 (n=2)" in page or "± " in page  # several seeds: mean ± std
    assert "<summary>Versions, commits, devices, checkpoints" in page


def test_best_mark_is_per_model_row_among_detectors(folder: Path):
    page = write_report(folder).read_text(encoding="utf-8")
    for metric in ("auroc", "fpr95_openood"):
        table = _table(page, f"t-{metric}")
        rows = table.split("<tr>")[2:]  # after the header row
        assert len(rows) == 2 * 2  # (pair, model) rows: models are rows, detectors columns
        # Exactly one marked cell per row, also in every row of the weaker model (cross_entropy).
        assert [row.count('class="num best"') for row in rows] == [1, 1, 1, 1]
        assert sum("cross_entropy" in row for row in rows) == 2
    assert "best detector for one model on one in/out pair" in page


def test_warnings_name_degenerate_picks_and_missing_scores(folder: Path):
    victim = next((folder / "scores" / "fake").glob("joint-energy-fake_in-ood_set_01-seed1-*.npz"))
    victim.unlink()
    page = write_report(folder).read_text(encoding="utf-8")
    warnings = page[page.index('id="warnings"') : page.index("</ul>")]
    assert "degenerate tuning pick: cross_entropy / odin (seed 0): epsilon 0" in warnings
    assert "temperature 1000 is at the edge of the grid" in warnings
    assert "missing scores: joint / energy fake_in-&gt;ood_set_01 seed 1" in warnings
    assert "no stored scores" in page  # the figure's place says why it is empty


def test_names_are_escaped(tmp_path: Path):
    folder = fake_results(tmp_path / "runs", detectors=["<script>alert(1)</script>"], sets=1, n=50)
    page = write_report(folder).read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_cli_report_html_with_compare_and_output(folder: Path, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "--results", str(folder), "--format", "html"])
    assert result.exit_code == 0, result.output
    assert (folder / REPORT_FILENAME).is_file()
    out = tmp_path / "page.html"
    args = ["report", "--results", str(folder), "--format", "html", "--output", str(out)]
    result = runner.invoke(cli, [*args, "--compare", "msp", "energy", "--resamples", "50"])
    assert result.exit_code == 0, result.output
    paired = _table(out.read_text(encoding="utf-8"), "paired")
    assert "95% interval excludes 0" in paired and "[" in paired
    # Every marked (significant) cell carries the *, and its interval excludes 0.
    marked = re.findall(r'class="num best (better|worse)"[^>]*><strong>([^<]*)</strong>', paired)
    assert marked and all(text.endswith(" *") for _, text in marked)
    # energy is the better detector in these rows (larger shifts): green in every metric but
    # fpr95_openood, where its lower (better) value is a negative difference, still "better".
    assert {kind for kind, _ in marked} == {"better"}
    marked = [text for _, text in marked]
    for text in marked:
        low, high = (float(v) for v in re.search(r"\[([-+0-9.]+), ([-+0-9.]+)\]", text).groups())
        assert low >= 0 or high <= 0, text  # >=: the shown bounds are rounded
    result = runner.invoke(cli, [*args, "--compare", "msp", "nope"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("Error: --compare msp nope")


def test_cli_report_html_without_rows_is_one_line(tmp_path: Path, folder: Path):
    result = CliRunner().invoke(cli, ["report", "--results", str(tmp_path), "--format", "html"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    result = CliRunner().invoke(cli, ["report", "--results", str(folder), "--format", "html", "--ci"])
    assert result.exit_code == 2 and result.output.startswith("Error: --ci is for the text tables")


def test_sweep_writes_the_page_with_mean_and_std_over_seeds(tmp_path: Path):
    results = tmp_path / "runs"
    args = [
        "sweep", "-m", "cross_entropy", "-d", "msp", "--seeds", "0,1", "--epochs", "1", "--limit", "50",
        "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache"), "--threads", "1",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"report: {results / REPORT_FILENAME}" in result.output
    page = (results / REPORT_FILENAME).read_text(encoding="utf-8")
    auroc = _table(page, "t-auroc")
    assert auroc.count("(n=2)") == 5  # one msp cell per OOD set of the embedded suite, 2 seeds each
    assert page.count("<img ") == 2 * 5 + 1  # small multiples per seed, + the legend


def test_skipped_files_and_published_numbers_are_shown(tmp_path: Path):
    from report_rows import make_row

    from oodbench.results import write_rows

    folder = tmp_path / "runs"
    rows = [
        make_row(suite="svhn", in_dataset="svhn", out_dataset="cifar10", model_arch="vgg13",
                 training_recipe="lee2018-svhn", detector=detector, auroc=0.7)
        for detector in ("msp", "odin")
    ]  # fmt: skip
    write_rows(folder / "rows.jsonl", rows)
    (folder / "rows.jsonl.rejected").write_bytes(b"{broken\n{also broken\n")
    page = write_report(folder).read_text(encoding="utf-8")
    assert "skipped file: rows.jsonl.rejected holds 2 unreadable row line(s)" in page
    published = page[page.index('id="published"') : page.index("</table>", page.index('id="published"'))]
    # msp: made like the paper except the metric convention; odin: also the tuning protocol.
    assert "exact metrics, paper legacy grid" in published
    assert "paper tuned hyperparameters on held-out test-OOD images" in published
    assert 'class="no"' in published and "not comparable" in page
    assert "missing scores: cross_entropy / msp svhn-&gt;cifar10" in page  # rows without scores files


def test_rows_without_a_scores_digest_are_drawn_with_a_warning(tmp_path: Path):
    from oodbench.results import read_rows, write_rows

    folder = fake_results(tmp_path / "runs", detectors=["msp"], sets=2, n=50)
    rows = read_rows(folder / "rows.jsonl")
    for row in rows:
        row.scores_sha256 = ""  # as written before schema 3
    write_rows(folder / "rows.jsonl", rows)
    page = write_report(folder).read_text(encoding="utf-8")
    assert "2 score file(s) read unverified" in page
    assert page.count("<img ") == 2 + 1  # still drawn
