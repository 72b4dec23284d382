"""Targets built the way a run builds them, for library users and the runner.

:func:`demo_target` gives the built-in demo API called in this process (no
sockets, deterministic), bound by the scenario: the built-in social API, or the
scenario's ``api`` section. :func:`with_browser` adds the ``browser`` tier.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from sim_engine.model.records import Target
from sim_engine.model.safety import check_target_allowed
from sim_engine.model.scenario import Scenario, ScenarioError
from sim_engine.targets.transport import TargetUnreachableError, Transport

__all__ = ["bind_target", "demo_target", "with_browser"]


def bind_target(scenario: Scenario, transport: Transport) -> Target:
    """Bind a transport the way ``scenario`` says: its ``api`` section, or (without one)
    the built-in description of the demo social API. One binding path for every API.

    Args:
        scenario: the validated scenario.
        transport: where requests go (HTTP, in-process, or a wrapper of either).
    """
    from sim_engine.engine.simulation import effective_api
    from sim_engine.targets.declarative import DeclarativeTarget

    return DeclarativeTarget(
        transport, effective_api(scenario), seed=scenario.seed, registry=scenario.registry
    )


def demo_target(scenario: Scenario, db_path: str = ":memory:") -> Target:
    """Return the built-in demo API, called in this process, bound for ``scenario``.

    Args:
        scenario: the validated scenario (its ``api`` section, if any, is used).
        db_path: the demo app's SQLite file (default: in memory, gone at the end).

    Close it with ``await target.aclose()``.
    """
    from sim_engine.demo import create_app
    from sim_engine.targets.inprocess import AsgiTransport

    return bind_target(scenario, AsgiTransport(create_app(db_path)))


def with_browser(
    scenario: Scenario,
    inner: Target,
    url: str,
    headers: Mapping[str, str] | None = None,
    out_dir: Path | None = None,
) -> Target:
    """Wrap ``inner`` in the browser tier when the scenario's ``browser.share`` is above 0
    (else return it unchanged): browser users' mapped actions run page flows at ``url``
    (or ``browser.base_url``) in Chromium, under the loopback guard, carrying ``headers``
    (the synthetic marker) and the marker cookie; failed steps' screenshots go to
    ``out_dir/screenshots`` (``browser.screenshots: on_failure``; None: none are taken).

    Raises:
        ScenarioError: the target has no pages to open (``inprocess``).
        TargetUnreachableError: Playwright is not installed, or Chromium is not at
            ``browser.executable_path``.
    """
    spec = scenario.browser
    if spec is None or spec.share <= 0:
        return inner
    base = spec.base_url or url
    if not base.startswith(("http://", "https://")):
        raise ScenarioError(
            f"browser: the browser tier needs an HTTP target with pages, not {url!r}"
        )
    check_target_allowed(base, scenario.safety.allow_hosts)
    if importlib.util.find_spec("playwright") is None:
        raise TargetUnreachableError("browser: Playwright is not installed (pip install -e .)")
    if not os.access(spec.executable_path, os.X_OK):
        raise TargetUnreachableError(
            f"browser: no Chromium at {spec.executable_path} (apt-get install chromium)"
        )
    from sim_engine.targets.browser import BrowserPool, BrowserTarget, Screenshots

    pool = BrowserPool(
        spec.executable_path,
        spec.max_contexts,
        scenario.safety.allow_hosts,
        headers=headers,
        marker_url=base,
    )
    shots = None
    if out_dir is not None and spec.screenshots == "on_failure":
        shots = Screenshots(out_dir / "screenshots", spec.max_screenshots)
    return BrowserTarget(
        inner, spec, base, pool, seed=scenario.seed, registry=scenario.registry, screenshots=shots
    )
