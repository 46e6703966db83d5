"""Small text facts shared by more than one stage.

Kept here, not in a stage module, so that ingestion and the real-text sentence tools read the same
definition instead of two copies that drift apart.
"""

from __future__ import annotations

#: Glyphs that PDFs use as list bullets. Ingestion turns each into "•"; sentence tools treat a line
#: that starts with one as the start of a new item.
BULLET_GLYPHS: frozenset[str] = frozenset("•▪▫●◦■□◼◻◾◽➢➤►▶✓✔❖◆◇○∙·⁃‣")
