"""Ingest: read input files, validate them against the data contract, quarantine bad rows."""
