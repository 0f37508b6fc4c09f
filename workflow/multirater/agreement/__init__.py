"""The agreement stage (workflow/rules/agreement.smk): inter-rater statistics (``statistics``) and
Figures 1-2 (``figures``, which draws what ``statistics`` computes); ``commands`` runs both."""
