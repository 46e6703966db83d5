"""themes: find the Child Safeguarding Practice Review Panel's practice themes in review PDFs."""

__version__ = "0.1.0"
