"""Servers that are not the reference server, to point the toolkit at (see README)."""
