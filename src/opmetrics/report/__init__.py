"""Report: render stored results as the PMR pack (HTML page, charts, CSV datafiles)."""
