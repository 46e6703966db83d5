"""themes: find the Child Safeguarding Practice Review Panel's practice themes in review PDFs."""

from themes.config import apply_prefect_environment

# Before anything imports Prefect (it reads its settings once): no analytics, DO_NOT_TRACK=1.
apply_prefect_environment()

__version__ = "0.1.0"
