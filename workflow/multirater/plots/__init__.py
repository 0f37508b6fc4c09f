"""Figures: one shared style (``style``), inter-rater figures (``agreement``), calibration figures."""
