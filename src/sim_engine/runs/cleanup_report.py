"""What ``sim-engine cleanup`` did or would do: counts per kind of resource, what stays."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["DOUBT_MIN", "CleanupReport", "Tally", "requests_text"]

DOUBT_MIN = 3
"""A kind whose deletes all answered 404 or 410, this many or more, is in doubt: a wrong
delete path answers 404 too, and the old cleanup called that "already gone" (issue 12)."""


def requests_text(requests: Counter[str]) -> str:
    """The three most frequent requests, ``POST /posts, POST /posts/7/comments, ...``."""
    shown = ", ".join(r for r, _ in requests.most_common(3))
    return shown + (", ..." if len(requests) > 3 else "")


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
        unanswered: creations in doubt that remain so (sent, never answered: a kill
            mid-request; see :mod:`sim_engine.engine.journal`): action -> ``"METHOD
            path"`` -> how many; ``fixable`` the same for those cleanup deletes by
            the path they named (a dry run).
        settled: creations in doubt cleanup settled: ``deleted`` (they had been made),
            ``never made`` (their delete answered 404 or 410).
    """

    kinds: dict[str, Tally] = field(default_factory=dict)
    users: Tally = field(default_factory=Tally)
    stays: Counter[tuple[str, str]] = field(default_factory=Counter)
    unanswered: dict[str, Counter[str]] = field(default_factory=dict)
    fixable: dict[str, Counter[str]] = field(default_factory=dict)
    settled: Counter[str] = field(default_factory=Counter)

    def tally(self, kind: str) -> Tally:
        """Return the :class:`Tally` of ``kind`` (created empty)."""
        return self.kinds.setdefault(kind, Tally())

    def stay(self, what: str, why: str, count: int = 1) -> None:
        """Note that ``count`` of ``what`` (a kind, or ``users``) stay on the target, and why."""
        self.stays[(what, why)] += count

    def unsure(self, action: str, request: str, fixable: bool = False) -> None:
        """Note a creation in doubt of ``action`` sent as ``request`` (``"POST /posts"``)
        that stays so (``fixable``: cleanup would delete it by its path)."""
        into = self.fixable if fixable else self.unanswered
        into.setdefault(action, Counter())[request] += 1

    def doubted(self) -> list[str]:
        """Kinds (and ``users``) none of whose deletes worked and at least :data:`DOUBT_MIN`
        answered 404 or 410: "already gone" cannot be told from a wrong path there."""
        return [
            kind
            for kind, t in [*self.kinds.items(), ("users", self.users)]
            if t.deleted == 0 and t.gone >= DOUBT_MIN
        ]

    @property
    def doubts(self) -> list[str]:
        """One line per :meth:`doubted` kind."""
        return [
            f"every delete of {kind} answered 404 or 410: gone already, "
            "or a wrong path in its delete action?"
            for kind in self.doubted()
        ]

    @property
    def complete(self) -> bool:
        """True when nothing the run created stays on the target, nor may (:attr:`doubts`)."""
        return not self.stays and not self.doubts and not self.unanswered and not self.fixable

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
        lines.extend(f"in doubt: {doubt}" for doubt in self.doubts)
        for into, then in (
            (self.unanswered, "made or not, nothing names them: check the target"),
            (self.fixable, "cleanup deletes them if they were made"),
        ):
            for action, requests in into.items():
                lines.append(f"in doubt: {requests.total()} {action} sent with no answer "
                             f"({requests_text(requests)}): {then}")  # fmt: skip
        if self.settled:
            done = ", ".join(f"{n} {what}" for what, n in sorted(self.settled.items()))
            lines.append(f"sent with no answer before: {done}")
        return lines
