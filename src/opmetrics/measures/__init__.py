"""Measures: one module per family, all written as Ibis expressions over the store."""
