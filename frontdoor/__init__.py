"""Frontdoor composition root: the CLI and the wiring of every component. Nothing imports it."""
