"""Detector training: settings (torch-free), label choice, augmentation, schedule, checkpoints, the loop.

Import the pieces from their modules (``multirater.training.loop.train``); this package imports no torch
itself, so ``multirater.training.settings`` stays cheap for the sweep and the Snakefile.
"""
