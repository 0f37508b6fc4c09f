"""Detector training: settings (torch-free, from the workflow schema), the sweep, label choice,
augmentation, schedule, checkpoints, the loop (loop.run_training) and prediction.

Import the pieces from their modules; this package imports no torch itself, so ``settings`` and
``sweep`` stay cheap for the Snakefile.
"""
