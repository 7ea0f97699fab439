"""Web dashboard and JSON API over the embedded database (issue 7)."""
