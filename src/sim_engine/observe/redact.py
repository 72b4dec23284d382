"""Masking secrets before anything is logged: kept for its import path.

The functions live in :mod:`sim_engine.model.redact` (pure, so the engine can
mask what a target sent before any record is written); this module re-exports them.
"""

from __future__ import annotations

from sim_engine.model.redact import MASK, SECRET_KEYS, is_secret_key, redact, redact_text

__all__ = ["MASK", "SECRET_KEYS", "is_secret_key", "redact", "redact_text"]
