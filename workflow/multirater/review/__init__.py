"""From the ensemble back to the raters: a review queue of new images and boxes ranked by expected disagreement
(``multirater review``), exports to annotation tools (``multirater export``), and the check of the queue against
synthetic data where the truth is known (``multirater review-validate``)."""
