"""Prefect flows: wiring only; the work is done by the `themes` library."""
