"""Contract suite and the one protocol client."""
