"""Every repository file that README.md, baselines/README.md and docs/*.md point at exists.

Checked: Markdown links to relative targets, and path-like code (`inline` or in fenced blocks)
that contains a "/" and ends in a file extension or a "/". Skipped: URLs, anchors, home and
environment paths (~, $), placeholders (<...>, *, {...}), and the few OUTPUT paths that a run
writes, which are not repository files (the allow-list below).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([REPO / "README.md", REPO / "baselines" / "README.md", *(REPO / "docs").glob("*.md")])
# Paths that name what `oodbench run` / `report` / `plot` write, not files of the repository.
OUTPUT_PATHS = {"runs/", "tables/", "plots/"}

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NOT_A_PATH = set(" <>*{}$~:|=()[]\"',;")


def looks_like_repo_path(text: str) -> bool:
    if not text or any(ch in _NOT_A_PATH for ch in text) or text.startswith(("-", "/")):
        return False
    if "/" not in text:
        return False
    return text.endswith("/") or re.search(r"\.[A-Za-z0-9]{1,5}$", text.rsplit("/", 1)[-1]) is not None


def cited_paths(document: Path) -> list[tuple[str, Path]]:
    """(as written, where it resolves) for every link and repo-path-like code span."""
    text = document.read_text(encoding="utf-8")
    found = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:, ...) or an anchor in the same page
        found.append((target, document.parent / target.split("#", 1)[0]))
    fenced = " ".join(_FENCE.findall(text))
    spans = _INLINE_CODE.findall(_FENCE.sub("", text)) + fenced.split()
    for span in spans:
        if looks_like_repo_path(span) and span not in OUTPUT_PATHS:
            # Paths in code are written from the repository root; a few from the document's folder.
            here = document.parent / span
            found.append((span, here if here.exists() else REPO / span))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_cited_files_exist(document):
    paths = cited_paths(document)
    missing = [written for written, path in paths if not path.exists()]
    assert not missing, f"{document.relative_to(REPO)} cites missing file(s): {missing}"
    assert all(REPO in path.resolve().parents or path.resolve() == REPO for _, path in paths), (
        "a document points outside the repository"
    )


def test_the_checker_finds_what_it_should(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [the notes](docs/nothing.md), [a site](https://example.org/x.md), [top](#top).\n"
        "Run `oodbench report --baseline baselines/missing.csv`, then read `baselines/missing.csv`,\n"
        "`~/.cache/oodbench/x.pt`, `runs/`, `scores/*.npz`, `<folder>/rows.jsonl`, `oodbench/`.\n"
        "```\noodbench report --baseline baselines/gone.csv\n```\n"
    )
    written = [w for w, _ in cited_paths(page)]
    assert written == ["docs/nothing.md", "baselines/missing.csv", "oodbench/", "baselines/gone.csv"]


def test_the_methods_note_is_cited_where_the_code_cites_it():
    assert (REPO / "docs" / "methods.md").is_file()
    for path in ("oodbench/metrics.py", "tests/test_metrics.py", "tests/test_training.py"):
        text = (REPO / path).read_text(encoding="utf-8")
        bare = re.findall(r"(?<!docs/)methods\.md", text)
        assert not bare, f"{path} cites methods.md without its folder (docs/methods.md)"
