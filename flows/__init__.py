"""Prefect flows: wiring only; the work is done by the `themes` library."""

# Importing any flow module imports this first: telemetry off before Prefect is imported.
from themes.config import apply_prefect_environment

apply_prefect_environment()
