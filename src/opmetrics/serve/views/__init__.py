"""One module per dashboard view: its page and the API routes it reads."""
