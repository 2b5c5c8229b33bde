"""Shared pytest setup: Hypothesis runs the same examples on every machine (reproducible CI)."""

from hypothesis import settings

settings.register_profile("digitform", derandomize=True, deadline=None)
settings.load_profile("digitform")
