"""The report stage (workflow/rules/report.smk): what a run produced and what it cost (``multirater timings``)."""
