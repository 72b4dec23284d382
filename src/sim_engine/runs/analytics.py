"""A run's analytics output (``run --analytics KIND``): options, checks, the sink.

``posthog``, ``segment`` and ``mixpanel`` send live through the vendor's SDK to
``--analytics-host`` (loopback, or a host in ``safety.allow_hosts``), with the key
read from the environment (:data:`KEY_ENV`; Mixpanel's optional project secret from
:data:`SECRET_ENV`); ``posthog-file``, ``segment-file`` and ``mixpanel-file`` write
batch files for import into the run directory. The key is never printed, logged or
written to the run's files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sim_engine.model.analytics import AnalyticsMapper
from sim_engine.model.records import UserRecord
from sim_engine.model.safety import SafetyError, check_target_allowed
from sim_engine.model.scenario import Scenario
from sim_engine.sinks.analytics import AnalyticsSink, AnalyticsWriter, file_writer

__all__ = [
    "KEY_ENV",
    "KINDS",
    "SECRET_ENV",
    "AnalyticsOptions",
    "AnalyticsSetupError",
    "analytics_options",
    "analytics_sink",
    "live_writer",
]

LIVE = ("posthog", "segment", "mixpanel")
KINDS = (*LIVE, *(f"{vendor}-file" for vendor in LIVE))
"""The values of ``run --analytics`` and ``generate --analytics``."""

KEY_ENV = "SIM_ENGINE_ANALYTICS_KEY"
"""Environment variable holding the project key (PostHog), write key (Segment) or token
(Mixpanel) of a live analytics sink."""

SECRET_ENV = "SIM_ENGINE_ANALYTICS_SECRET"
"""Environment variable holding Mixpanel's project secret for ``/import`` (optional)."""


class AnalyticsSetupError(ValueError):
    """The analytics options cannot work (no host, no key, SDK missing); one line."""


@dataclass(frozen=True)
class AnalyticsOptions:
    """Where a run's analytics events go.

    Attributes:
        kind: one of :data:`KINDS`.
        host: the live sink's base URL (None for the batch files).
        key: the live sink's key (never shown in ``repr``).
        secret: Mixpanel's project secret (never shown in ``repr``).
    """

    kind: str
    host: str | None = None
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)

    @property
    def vendor(self) -> str:
        """``posthog``, ``segment`` or ``mixpanel``."""
        return self.kind.removesuffix("-file")

    @property
    def live(self) -> bool:
        """Sent through the vendor's SDK (not written to a file)."""
        return not self.kind.endswith("-file")


def analytics_options(
    kind: str, host: str | None, env: Mapping[str, str], scenario: Scenario
) -> AnalyticsOptions:
    """Check and resolve ``--analytics KIND`` and ``--analytics-host``.

    Args:
        kind: one of :data:`KINDS`.
        host: the live sink's base URL.
        env: the environment (``os.environ``): the key and secret are read from it.
        scenario: the run's scenario (its ``analytics`` mapping must name every action).

    Raises:
        AnalyticsSetupError: unknown kind, a live sink without host or key, a host
            given to a file sink.
        SafetyError: the host is outside loopback and not in ``safety.allow_hosts``.
        ScenarioError: the mapping cannot name one of the scenario's actions.
    """
    if kind not in KINDS:
        raise AnalyticsSetupError(f"--analytics {kind!r}: choose one of {', '.join(KINDS)}")
    scenario.analytics_mapping()
    options = AnalyticsOptions(kind, host, env.get(KEY_ENV) or None, env.get(SECRET_ENV) or None)
    if not options.live:
        if host is not None:
            raise AnalyticsSetupError(f"--analytics-host is for a live sink, not {kind}")
        return options
    if host is None:
        raise AnalyticsSetupError(f"--analytics {kind} needs --analytics-host URL")
    try:
        check_target_allowed(host, scenario.safety.allow_hosts)
    except SafetyError as exc:
        raise SafetyError(f"--analytics-host: {exc}") from None
    if options.key is None:
        raise AnalyticsSetupError(f"--analytics {kind} needs its key in the {KEY_ENV} variable")
    return options


def live_writer(options: AnalyticsOptions) -> AnalyticsWriter:
    """The SDK writer of a live sink (options checked with :func:`analytics_options`).

    Raises:
        AnalyticsSetupError: the vendor's SDK is not installed.
    """
    from sim_engine.sinks.analytics import live

    assert options.host is not None and options.key is not None  # analytics_options checked
    try:
        if options.vendor == "posthog":
            return live.PosthogWriter(options.host, options.key)
        if options.vendor == "segment":
            return live.SegmentWriter(options.host, options.key)
        return live.MixpanelWriter(options.host, options.key, options.secret)
    except live.SdkMissingError as exc:
        raise AnalyticsSetupError(str(exc)) from None


def _writer(options: AnalyticsOptions, out_dir: Path, resumed: bool) -> AnalyticsWriter:
    if not options.live:
        return file_writer(options.vendor, out_dir, append=resumed)
    return live_writer(options)


def _known_users(out_dir: Path) -> list[UserRecord]:
    """The users a resumed run's ``users.jsonl`` lists (already identified)."""
    path = out_dir / "users.jsonl"
    if not path.exists():
        return []
    users = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                data = json.loads(line)
                data.pop("kind", None)
                users.append(UserRecord(**data))
    return users


def analytics_sink(
    options: AnalyticsOptions, scenario: Scenario, out_dir: Path, resumed: bool = False
) -> AnalyticsSink:
    """Build the run's analytics sink (checked first with :func:`analytics_options`).

    Raises:
        AnalyticsSetupError: the vendor's SDK is not installed.
        OSError: a batch file cannot be opened.
    """
    mapper = AnalyticsMapper(scenario.analytics_mapping(), seed=scenario.seed)
    users = _known_users(out_dir) if resumed else []
    return AnalyticsSink(mapper, _writer(options, out_dir, resumed), users)
