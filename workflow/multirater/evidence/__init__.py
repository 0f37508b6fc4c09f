"""The evidence run: the whole workflow once per rater preset and data seed, then LSE vs RSE over all runs."""
