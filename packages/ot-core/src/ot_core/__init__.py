"""ot-core."""
