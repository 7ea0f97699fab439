"""Engine: storage and execution. DuckDB by default; measures reach it through Ibis."""

from opmetrics.engine.store import Store

__all__ = ["Store"]
