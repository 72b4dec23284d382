"""What ``sim-engine cleanup`` did or would do: counts per kind of resource, what stays."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["CleanupReport", "Tally"]


@dataclass
class Tally:
    """Counts for one kind of resource (or for users).

    Attributes:
        deleted: deleted by cleanup (or that would be, in a dry run).
        gone: already gone from the target (its delete answered 404 or 410).
        with_account: gone with their creator's account (``api.cleanup.with_account``).
        failed: deletions the target refused (they stay).
    """

    deleted: int = 0
    gone: int = 0
    with_account: int = 0
    failed: int = 0


@dataclass
class CleanupReport:
    """Counts of a cleanup, per kind of resource (``own_posts``...) and for users.

    Attributes:
        kinds: kind -> :class:`Tally`, for what the run created.
        users: the run's users (accounts signed up; founders are kept, not counted).
        stays: (what, why) -> how many stay on the target: nothing could delete them
            (no delete handle, the creator could not log in, a delete refused).
    """

    kinds: dict[str, Tally] = field(default_factory=dict)
    users: Tally = field(default_factory=Tally)
    stays: Counter[tuple[str, str]] = field(default_factory=Counter)

    def tally(self, kind: str) -> Tally:
        """Return the :class:`Tally` of ``kind`` (created empty)."""
        return self.kinds.setdefault(kind, Tally())

    def stay(self, what: str, why: str, count: int = 1) -> None:
        """Note that ``count`` of ``what`` (a kind, or ``users``) stay on the target, and why."""
        self.stays[(what, why)] += count

    @property
    def complete(self) -> bool:
        """True when nothing the run created stays on the target."""
        return not self.stays

    def lines(self, dry_run: bool) -> list[str]:
        """The lines ``sim-engine cleanup`` prints: a summary, one line per kind, what stays.

        The summary reads ``deleted 12 own_comments, 5 own_posts and 6 users``
        (``would delete`` in a dry run); kinds follow in the order they were
        deleted (children before parents), users last.
        """
        verb = "would delete" if dry_run else "deleted"
        parts = [f"{t.deleted} {kind}" for kind, t in self.kinds.items()]
        parts.append(f"{self.users.deleted} users")
        summary = f"{verb} " + (", ".join(parts[:-1]) + " and " if len(parts) > 1 else "")
        lines = [summary + parts[-1]]
        for kind, t in [*self.kinds.items(), ("users", self.users)]:
            extra = [
                f"{count} {label}"
                for count, label in (
                    (t.gone, "already gone"),
                    (t.with_account, "gone with their creator's account"),
                    (t.failed, "refused"),
                )
                if count
            ]
            label = "to delete" if dry_run else "deleted"
            lines.append(f"  {kind}: {t.deleted} {label}" + "".join(f", {e}" for e in extra))
        for (what, why), count in sorted(self.stays.items()):
            lines.append(f"stays on the target: {count} {what} ({why})")
        return lines
