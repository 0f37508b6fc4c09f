"""multirater: calibrated object detectors from multi-rater microscopy annotations."""

__version__ = "0.1.0"
