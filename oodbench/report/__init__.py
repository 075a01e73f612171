"""Reports from stored result rows: tables, the published comparison, paired comparisons and
the CI regression check.

One module per job:

- `rows`: columns checked, one metric convention, reruns de-duplicated; model identity
  (label, checkpoint hash, recipe, overrides, evaluation limit) and display labels;
- `table`: the comparison table model (cells over seeds, bootstrap intervals);
- `render`: Markdown, CSV, LaTeX and HTML;
- `published`: our cells beside published numbers, marked comparable or not
  (`published_results.csv` ships in this package);
- `compare`: B - A of two detectors or models with paired bootstrap intervals;
- `baseline`: the CI regression check against a baseline CSV.

Stored metric values are fractions; tables show percent.
"""

from oodbench.names import COLUMN_MODES, TABLE_METRICS
from oodbench.names import TABLE_FORMATS as FORMATS
from oodbench.report.baseline import (
    BaselineCheck,
    aggregate_by_key,
    compare_to_baseline,
    export_baseline,
    load_baseline,
)
from oodbench.report.common import higher_is_better
from oodbench.report.compare import (
    Difference,
    PairedComparison,
    compare,
    render_comparison,
)
from oodbench.report.published import (
    PUBLISHED_COLUMN,
    PUBLISHED_TRAINING,
    load_published,
    published_comparison,
    render_published,
)
from oodbench.report.render import render_table
from oodbench.report.rows import prepare_rows, select_labels
from oodbench.report.table import Cell, ComparisonTable, comparison_table

__all__ = [
    "COLUMN_MODES",
    "FORMATS",
    "PUBLISHED_COLUMN",
    "PUBLISHED_TRAINING",
    "TABLE_METRICS",
    "BaselineCheck",
    "Cell",
    "ComparisonTable",
    "Difference",
    "PairedComparison",
    "aggregate_by_key",
    "compare",
    "compare_to_baseline",
    "comparison_table",
    "export_baseline",
    "higher_is_better",
    "load_baseline",
    "load_published",
    "prepare_rows",
    "published_comparison",
    "render_comparison",
    "render_published",
    "render_table",
    "select_labels",
]
