"""Analytics tables (issue 9): filled in by the analytics work."""
from __future__ import annotations
