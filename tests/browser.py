"""Open a report page in headless Chromium (Selenium) and say what a reader's browser sees.

Used by tests/test_report_browser.py and benchmarks/bench_report.py (--browser). Needs Debian's
`chromium` and `chromium-driver` and `pip install selenium`; `browser_missing()` says why not.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_missing() -> str | None:
    """Why no browser check can run here (None: it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'selenium is not installed (pip install "oodbench[browser]")'
    if _binary("chromium", "chromium-browser") is None:
        return "no chromium binary (apt-get install chromium chromium-driver)"
    if _binary("chromedriver") is None:
        return "no chromedriver (apt-get install chromium-driver)"
    return None


@dataclass
class PageCheck:
    """What the browser saw."""

    title: str
    section_ids: list[str]
    n_tables: int
    images: list[tuple[str, int]]  # (alt, naturalWidth)
    console_errors: list[str]
    resources: list[str]  # URLs of performance resource entries (any fetch the page made)
    load_ms: float
    screenshot: Path | None = None
    notes: list[str] = field(default_factory=list)


def check_page(page: Path, screenshot: Path | None = None) -> PageCheck:
    """Load `page` (file://) in a fresh headless Chromium profile, open every <details>, and collect
    sections, tables, images, console errors and resource requests; optionally a full-page PNG."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser") or ""
    profile = tempfile.mkdtemp(prefix="oodbench-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(_binary("chromedriver")), options=options)
    try:
        started = time.perf_counter()
        driver.get(page.resolve().as_uri())  # returns once the load event has fired
        load_ms = (time.perf_counter() - started) * 1000
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        # Wait until every image has decoded (data: URIs decode asynchronously).
        deadline = time.time() + 30
        while time.time() < deadline and not driver.execute_script(
            "return Array.from(document.images).every(i => i.complete)"
        ):
            time.sleep(0.1)
        images = driver.execute_script("return Array.from(document.images).map(i => [i.alt, i.naturalWidth])")
        check = PageCheck(
            title=driver.title,
            section_ids=driver.execute_script(
                "return Array.from(document.querySelectorAll('section')).map(s => s.id)"
            ),
            n_tables=int(driver.execute_script("return document.querySelectorAll('table').length")),
            images=[(str(alt), int(width)) for alt, width in images],
            console_errors=[
                entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
            ],
            resources=driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"
            ),
            load_ms=load_ms,
        )
        if screenshot is not None:
            height = int(driver.execute_script("return document.body.scrollHeight"))
            driver.set_window_size(1400, min(max(height, 600), 2400))
            driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = false)")
            driver.execute_script("document.querySelector('details.pair')?.setAttribute('open', '')")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(screenshot))
            check.screenshot = screenshot
        return check
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    """`python tests/browser.py PAGE [SCREENSHOT.png]`: check a page, print what the browser saw."""
    import sys

    missing = browser_missing()
    if missing:
        raise SystemExit(f"Error: {missing}")
    page = Path(sys.argv[1])
    check = check_page(page, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    broken = sum(width == 0 for _, width in check.images)
    print(
        f"{page}: {page.stat().st_size / 1e6:.2f} MB, loaded in {check.load_ms:.0f} ms; "
        f"{check.n_tables} tables, {len(check.images)} images ({broken} broken), "
        f"{len(check.console_errors)} console errors, {len(check.resources)} requests"
    )


if __name__ == "__main__":
    main()
