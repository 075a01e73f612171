"""oodbench: a benchmark harness for out-of-distribution detection.

Convention everywhere: a detector's score is HIGHER for inputs that look more
in-distribution, and in-distribution is the positive class of every metric
unless the metric's name says otherwise.
"""

__version__ = "0.2.0"

# The public API (oodbench.api), imported on first use so that `import oodbench` (and the CLI's
# --help) stays light: torch is imported only when a model or data set is touched.
_API = ("evaluate", "load_model", "load_suite", "run_benchmark")
_DETECTOR_API = ("register_detector",)  # oodbench.detectors (no torch import either)


def __getattr__(name: str):
    if name in _API:
        from oodbench import api

        return getattr(api, name)
    if name in _DETECTOR_API:
        from oodbench import detectors

        return getattr(detectors, name)
    raise AttributeError(f"module 'oodbench' has no attribute {name!r}")


__all__ = ["__version__", *_API, *_DETECTOR_API]
