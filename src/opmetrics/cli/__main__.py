"""`python -m opmetrics.cli`: the same command line as the `opmetrics` script."""

from opmetrics.cli import app

app()
