"""The facts of an :class:`~sim_engine.realism.readers.EventLog`: which actions are writes.

Writes are the actions that create or change content; reads those that show it.
The defaults name the demo API's actions (and the social ones it may grow); a log
with other action names says its own with ``write_actions`` / ``read_actions``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim_engine.realism.estimators import RealismFacts, facts
from sim_engine.realism.readers import EventLog

__all__ = ["DEFAULT_READ_ACTIONS", "DEFAULT_WRITE_ACTIONS", "log_facts"]

DEFAULT_WRITE_ACTIONS: tuple[str, ...] = (
    "create_post",
    "update_post",
    "delete_post",
    "comment",
    "create_comment",
    "reply",
    "react",
    "like",
    "follow",
    "follow_author",
    "follow_back",
    "unfollow",
)
"""Actions counted as writes unless ``write_actions`` says otherwise."""
DEFAULT_READ_ACTIONS: tuple[str, ...] = (
    "browse_feed",
    "read_post",
    "view_post",
    "read_comments",
    "view_profile",
    "browse_trending",
    "check_followers",
)
"""Actions counted as reads (when the log has any of them) unless ``read_actions`` is given."""


def log_facts(
    log: EventLog,
    write_actions: Sequence[str] | None = None,
    read_actions: Sequence[str] | None = None,
) -> RealismFacts:
    """Measure ``log``'s facts, with writes and reads taken from its action column.

    Writes: events whose action is in ``write_actions`` (default
    :data:`DEFAULT_WRITE_ACTIONS`). With the default list and no event matching it,
    writes are unknown (None), not zero. Reads: events whose action is in
    ``read_actions`` (default :data:`DEFAULT_READ_ACTIONS` when the log has any of
    them), else every event that is not a write. A log without an action column has
    no write facts.

    Raises:
        RealismInputError: the arrays cannot be measured (one user only, ...).
    """
    is_write = log.has_action(list(write_actions or DEFAULT_WRITE_ACTIONS))
    if is_write is not None and write_actions is None and not is_write.any():
        is_write = None
    is_read = None
    if is_write is not None:
        is_read = log.has_action(list(read_actions or DEFAULT_READ_ACTIONS))
        if is_read is not None and read_actions is None and not is_read.any():
            is_read = None
    return facts(log.user, log.t, log.offset_s, is_write, is_read=is_read)
