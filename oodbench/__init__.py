"""oodbench: a benchmark harness for out-of-distribution detection.

Convention everywhere: a detector's score is HIGHER for inputs that look more
in-distribution, and in-distribution is the positive class of every metric
unless the metric's name says otherwise.
"""

__version__ = "0.1.0"
