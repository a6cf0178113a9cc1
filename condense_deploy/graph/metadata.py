"""The keys we write into a model's ``metadata_props``. No dependencies: the table, the exporter and
``inspect`` read them on a board."""

from __future__ import annotations

__all__ = ["META", "OPTIMIZE_KEY"]

META = "condense_deploy."  # prefix of every metadata_props key we write
OPTIMIZE_KEY = META + "optimize"  # optimize's report (JSON): mode, passes, tuned choices
