"""The paper's figures (Lee et al., ICLR 2018), reproducible from the command line.

    oodbench figures toy                  # oodbench.figures.toy: 2-D toy, Figs. 1-2
    oodbench figures samples --in mnist   # oodbench.figures.samples: GAN samples, histograms

Each module returns arrays and metrics and writes PNGs (matplotlib Agg, atomic writes).
"""
