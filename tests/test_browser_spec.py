"""The ``browser`` section's schema: one-key steps, element locators, known flows and
actions, generators checked; the demo's built-in flows; the tier a user is in."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sim_engine import default_scenario
from sim_engine.model.browser_spec import BrowserSpec, StepSpec, demo_browser
from sim_engine.model.scenario import ScenarioError
from sim_engine.targets.browser import guarded_host, uses_browser


def step(data: Any) -> StepSpec:
    return StepSpec.model_validate(data)


def test_steps_are_one_key_mappings() -> None:
    assert step({"goto": "/p/{memory.id}"}).path == "/p/{memory.id}"
    fill = step({"fill": {"test_id": "title", "value": "{{title}}"}, "optional": True})
    assert (fill.kind, fill.test_id, fill.value, fill.optional) == (
        "fill",
        "title",
        "{{title}}",
        True,
    )
    assert step({"click": {"role": "button", "name": "Log in"}}).describe() == (
        "click role=button name=Log in"
    )
    assert step({"wait_for": {"url": "**/p/*"}}).describe() == "wait_for url=**/p/*"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"goto": "/", "click": {"text": "x"}}, "exactly one of goto"),
        ({"hover": {"text": "x"}}, "exactly one of goto"),
        ({"click": "Log in"}, "expected a mapping"),
        ({"click": {}}, "exactly one of role, text, test_id, css"),
        ({"click": {"text": "a", "css": "b"}}, "exactly one of role"),
        ({"click": {"text": "a", "value": "v"}}, "value not allowed"),
        ({"fill": {"test_id": "t"}}, "value is needed"),
        ({"extract": {"test_id": "t"}}, "into (a memory key) is needed"),
        ({"extract": {"test_id": "t", "into": "bad key"}}, "pattern"),
        ({"click": {"text": "a", "name": "n"}}, "name goes with role"),
        ({"wait_for": {"url": "**", "text": "a"}}, "either url or an element"),
    ],
)
def test_bad_steps_say_what_is_wrong(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        step(data)


def test_flows_and_actions_must_name_each_other() -> None:
    flows = {"home": [{"goto": "/"}]}
    with pytest.raises(ValidationError, match="no flow named 'away'"):
        BrowserSpec.model_validate({"flows": flows, "actions": {"browse_feed": {"away": 1}}})
    with pytest.raises(ValidationError, match="weight must be > 0"):
        BrowserSpec.model_validate({"flows": flows, "actions": {"browse_feed": {"home": 0}}})
    with pytest.raises(ValidationError, match="login: no flow named 'sign'"):
        BrowserSpec.model_validate({"flows": flows, "login": "sign"})
    with pytest.raises(ValidationError, match="at least one step"):
        BrowserSpec.model_validate({"flows": {"none": []}})


def test_the_scenario_checks_actions_and_generators() -> None:
    base = default_scenario()
    flows = {"home": [{"goto": "/"}, {"fill": {"test_id": "q", "value": "{{nonsense}}"}}]}
    with pytest.raises(ScenarioError, match=r"browser\.flows\.home\.1: unknown generator"):
        base.with_overrides(browser={"flows": flows})
    with pytest.raises(ScenarioError, match="'fly' is not an action of the scenario"):
        base.with_overrides(browser={"flows": {"h": [{"goto": "/"}]}, "actions": {"fly": {"h": 1}}})
    ok = base.with_overrides(browser={"share": 0.3, "flows": {"h": [{"goto": "/"}]}})
    assert ok.browser is not None and ok.browser.share == 0.3


def test_the_demo_flows_follow_seed_003s_entry_points() -> None:
    demo = demo_browser()
    assert demo.actions["browse_feed"] == {
        "home": 40,
        "search": 15,
        "category": 20,
        "list": 15,
        "assistant": 10,
    }
    assert demo.share == 0 and demo.login == "log_in" and demo.session_cookie == "sim_session"
    assert default_scenario().with_overrides(browser=demo.model_dump(mode="json")).browser == demo


def test_the_browser_share_is_a_stable_fraction_of_users() -> None:
    users = range(1, 20_001)
    picked = [u for u in users if uses_browser(7, u, 0.2)]
    assert 0.19 < len(picked) / len(users) < 0.21
    assert picked == [u for u in users if uses_browser(7, u, 0.2)]  # the same every time
    assert set(picked) <= {u for u in users if uses_browser(7, u, 0.5)}  # a larger share keeps them
    assert picked != [u for u in users if uses_browser(8, u, 0.2)]
    assert not any(uses_browser(7, u, 0.0) for u in users)


@pytest.mark.parametrize(
    ("url", "blocked"),
    [
        ("http://127.0.0.1:8000/x", None),
        ("http://localhost/x", None),
        ("http://[::1]:9/", None),
        ("data:image/png;base64,AAAA", None),
        ("about:blank", None),
        ("https://example.com/a.js", "example.com"),
        ("http://10.0.0.1/", "10.0.0.1"),
        ("ws://evil.test/socket", "evil.test"),
        ("http://allowed.test/x", None),
    ],
)
def test_the_guard_lets_only_loopback_and_allowed_hosts_through(
    url: str, blocked: str | None
) -> None:
    assert guarded_host(url, ("allowed.test",)) == blocked
