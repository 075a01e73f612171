"""Size and build time of the HTML report for a large made-up results folder.

    python benchmarks/bench_report.py --detectors 20 --sets 10 --out /tmp/big-report

Writes fake rows and scores (one model, one seed, `--n` ID and OOD scores per row; each
detector's OOD scores are shifted by its own amount so the tables and figures differ), then
`oodbench.report.html.write_report`, and prints the page's size and build time. The browser
load time is measured by tests/test_report_browser.py's helper (`--browser`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from report_fake import fake_results  # noqa: E402  (shared with the report tests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=20)
    parser.add_argument("--sets", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/oodbench-big-report"))
    args = parser.parse_args()
    from oodbench.report.html import write_report

    folder = fake_results(args.out, detectors=args.detectors, sets=args.sets, n=args.n, seeds=args.seeds)
    started = time.perf_counter()
    page = write_report(folder)
    seconds = time.perf_counter() - started
    print(
        f"{page}: {page.stat().st_size / 1e6:.2f} MB, built in {seconds:.1f} s "
        f"({args.detectors} detectors x {args.sets} sets x {args.seeds} seed(s), {args.n} scores each)"
    )


if __name__ == "__main__":
    main()
