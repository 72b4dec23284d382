"""Realism: the stylized facts of an event log, measured with published estimators.

``estimators`` holds pure numpy functions on arrays (user codes, unix seconds, local
offsets, writes) and the :class:`RealismFacts` they produce; see docs/realism.md for
every fact, its estimator and its source.
"""

from __future__ import annotations

from sim_engine.realism.estimators import (
    FactDistances,
    RealismFacts,
    RealismInputError,
    distances,
    facts,
)

__all__ = ["FactDistances", "RealismFacts", "RealismInputError", "distances", "facts"]
