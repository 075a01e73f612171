"""Export result rows to experiment trackers: MLflow (`oodbench[mlflow]`) and Weights & Biases
(`oodbench[wandb]`). Both log the same content (`oodbench.export.common`); neither package is
imported until an export runs, and this package imports nothing heavy (the CLI loads it).
"""
