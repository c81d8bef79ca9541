"""Martech Bridge: shared code for every function."""
