"""The four renderers: Markdown, CSV, LaTeX (booktabs) and HTML.

Every table becomes a `Grid` of strings (header, body, bold flags) and `render_grid` writes it
in one of the text formats; CSV is written from each table's numeric frame instead, so that
CSV cells stay numbers (percent) rather than formatted text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from oodbench.errors import UserInputError
from oodbench.names import TABLE_FORMATS as FORMATS
from oodbench.report.common import MISSING
from oodbench.report.table import ComparisonTable


@dataclass
class Grid:
    """Strings ready to render: header, body rows, bold flags, number of leading label columns."""

    header: list[str]
    body: list[list[str]]
    bold: list[list[bool]]
    n_index: int
    caption: str
    text_columns: tuple[int, ...] = ()  # further left-aligned (non-numeric) columns

    def left(self, i: int) -> bool:
        return i < self.n_index or i in self.text_columns


def table_grid(table: ComparisonTable) -> Grid:
    body, bold = [], []
    for key in table.row_keys:
        best = table.best_columns(key)
        body.append([*key, *(table.cell(key, col).text() for col in table.column_labels)])
        bold.append([False] * len(key) + [col in best for col in table.column_labels])
    return Grid(
        header=[*table.index_names, *table.column_labels],
        body=body,
        bold=bold,
        n_index=len(table.index_names),
        caption=table.caption(),
    )


def _markdown(grid: Grid) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    body = [
        [f"**{esc(text)}**" if strong else esc(text) for text, strong in zip(row, flags, strict=True)]
        for row, flags in zip(grid.body, grid.bold, strict=True)
    ]
    header = [esc(text) for text in grid.header]
    widths = [max(3, len(header[i]), *(len(row[i]) for row in body)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if grid.left(i) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * width if grid.left(i) else "-" * (width - 1) + ":" for i, width in enumerate(widths)]
    lines = [grid.caption, "", line(header), "| " + " | ".join(rule) + " |", *(line(row) for row in body)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("->", r"$\to$").replace("±", r"$\pm$").replace(MISSING, "--")


def _latex(grid: Grid) -> str:
    def row_tex(cells: list[str], flags: list[bool]) -> str:
        items = [
            rf"\textbf{{{_latex_escape(text)}}}" if strong else _latex_escape(text)
            for text, strong in zip(cells, flags, strict=True)
        ]
        return " & ".join(items) + r" \\"

    spec = "".join("l" if grid.left(i) else "r" for i in range(len(grid.header)))
    lines = [
        f"% {grid.caption}",
        r"% needs \usepackage{booktabs}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        row_tex(grid.header, [False] * len(grid.header)),
        r"\midrule",
        *(row_tex(row, flags) for row, flags in zip(grid.body, grid.bold, strict=True)),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _html(grid: Grid) -> str:
    def cell(text: str, strong: bool, index: bool) -> str:
        inner = html.escape(text)
        if strong:
            inner = f"<strong>{inner}</strong>"
        return f'<th scope="row">{inner}</th>' if index else f"<td>{inner}</td>"

    head = "".join(f"<th>{html.escape(text)}</th>" for text in grid.header)
    rows = [
        "<tr>"
        + "".join(
            cell(text, strong, i < grid.n_index)
            for i, (text, strong) in enumerate(zip(row, flags, strict=True))
        )
        + "</tr>"
        for row, flags in zip(grid.body, grid.bold, strict=True)
    ]
    lines = [
        "<table>",
        f"<caption>{html.escape(grid.caption)}</caption>",
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table>",
    ]
    return "\n".join(lines) + "\n"


def render_grid(grid: Grid, fmt: str) -> str:
    if fmt == "markdown":
        return _markdown(grid)
    if fmt == "latex":
        return _latex(grid)
    if fmt == "html":
        return _html(grid)
    raise UserInputError(f"Unknown format {fmt!r}. Available: {', '.join(FORMATS)}.")


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def render_table(table: ComparisonTable, fmt: str = "markdown") -> str:
    """The table as Markdown, CSV (numeric, percent), LaTeX (booktabs) or HTML."""
    if fmt == "csv":
        return csv_text(table.to_frame())
    return render_grid(table_grid(table), fmt)
