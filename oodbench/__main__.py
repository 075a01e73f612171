"""`python -m oodbench ...` runs the command line, so `torchrun -m oodbench train ...` works too."""

from oodbench.cli import main

if __name__ == "__main__":
    main()
