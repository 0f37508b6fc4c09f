"""report: what a run found and where it ran, for the HTML report's front page (workflow/rules/report.smk)."""
