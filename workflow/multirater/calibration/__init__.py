"""calibration: post-hoc calibrators fitted on validation detections (hard or multi-rater soft targets) and
applied to test detections."""
