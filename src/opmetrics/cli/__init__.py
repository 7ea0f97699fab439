"""The `opmetrics` command line, one module per command group. The commands are thin: they parse
options, call the layer that does the work, and print what it returns."""

# The order of these imports is the order `opmetrics --help` lists the commands in.
from opmetrics.cli import inputs  # noqa: I001, F401  (each module registers its commands)
from opmetrics.cli import runs  # noqa: F401
from opmetrics.cli import reference  # noqa: F401
from opmetrics.cli import admin  # noqa: F401
from opmetrics.cli.common import app

__all__ = ["app"]
