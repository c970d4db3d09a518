"""Measurement: does the achievement system change what members do?

Retention cohorts, the metric table the seeds ask for, holdout lift with its interval, and a
report (rich tables in the terminal, a self-contained HTML file with matplotlib charts). Every
metric is computed in SQL over the store (SQLite and PostgreSQL alike); Python only turns the
aggregated rows into intervals and charts. See README "Measurement" for the definitions.
"""
