"""`python -m oodbench.cli ...` runs the command line."""

from oodbench.cli import main

main()
