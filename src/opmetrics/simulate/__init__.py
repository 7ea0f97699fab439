"""Synthetic estate: a realistic, seeded month of DCC traffic for running opmetrics without real data."""

from opmetrics.simulate.generator import SCALES, simulate_month

__all__ = ["SCALES", "simulate_month"]
