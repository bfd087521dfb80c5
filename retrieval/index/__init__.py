"""Vector index layer."""
