"""report: what a run found, where it ran and what it cost, for the HTML report's front page and
``multirater timings`` (workflow/rules/report.smk)."""
