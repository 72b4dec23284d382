"""Running a flow's steps on a page, one measured :class:`PageStep` per step.

A :class:`PageWatch` listens to a page's console, uncaught errors, failed requests and
document responses, and each step takes what arrived while it ran. Timings come from
the Navigation Timing API (``performance.getEntriesByType("navigation")``) of the
document a step opened.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from sim_engine.model.browser_spec import StepSpec
from sim_engine.model.records import PageStep
from sim_engine.model.templates import ContentPool, TemplateError, format_value, render
from sim_engine.targets.browser.pacing import StepPacer

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Locator, Page, Request, Response

__all__ = ["FlowResult", "PageWatch", "run_flow"]

_TIMING_JS = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  return n ? [n.responseStart, n.domContentLoadedEventEnd, n.loadEventEnd] : null;
}"""


class PageWatch:
    """What a page reported since the last :meth:`take`: console errors, uncaught
    errors, failed requests, and the status of the last document it loaded."""

    def __init__(self, page: Page) -> None:
        self.console: list[str] = []
        self.failed: list[str] = []
        self.status = 0
        self.navigated = False
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.console.append(f"uncaught: {exc}"[:300]))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        self._page = page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console.append(message.text[:300])

    def _failed(self, request: Request) -> None:
        self.failed.append(f"{request.method} {request.url[:200]}: {request.failure}"[:300])

    def _response(self, response: Response) -> None:
        request = response.request
        if request.is_navigation_request() and request.frame == self._page.main_frame:
            self.status = response.status
            self.navigated = True
        elif response.status >= 400:
            self.failed.append(f"{request.method} {response.url[:200]}: HTTP {response.status}")

    def take(self) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        """Return and clear the console errors, failed requests and whether a document
        was loaded since the last call."""
        out = (tuple(self.console), tuple(self.failed), self.navigated)
        self.console.clear()
        self.failed.clear()
        self.navigated = False
        return out


@dataclass
class FlowResult:
    """A flow's steps as measured, and how it ended.

    Attributes:
        steps: one :class:`PageStep` per step run.
        ok: every step that ran succeeded, or an optional one ended the flow.
        error: the failed step's reason (None when ok).
    """

    steps: list[PageStep] = field(default_factory=list)
    ok: bool = True
    error: str | None = None


@dataclass
class FlowEnv:
    """What steps need besides the page: where pages are, placeholders, generators.

    Attributes:
        base_url: ``goto`` paths are relative to it.
        context: placeholder values (``user`` -> identity fields).
        memory: the user's browser memory (``extract`` writes, ``{memory.KEY}`` reads).
        rng: draws generated values and ``pick: random``.
        pool: generated content.
        timeout_ms: a step's wall time limit.
        pacer: the think times between steps (None: none, all at the action's time).
        answer: what ``extract`` steps ``into: answer.FIELD`` found (FIELD -> value).
        shoot: takes a failed step's screenshot (page, the step's index in the flow, the
            step) and returns its file name, or None (None: no screenshots).
    """

    base_url: str
    context: Mapping[str, Mapping[str, Any]]
    memory: dict[str, Any]
    rng: random.Random
    pool: ContentPool
    timeout_ms: float
    pacer: StepPacer | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    shoot: Callable[[Page, int, StepSpec], Awaitable[str | None]] | None = None


def _fill(template: Any, env: FlowEnv) -> str:
    context = {**env.context, "memory": env.memory}
    return format_value(render(template, context, env.rng, env.pool))


def _locate(page: Page, step: StepSpec) -> Locator:
    if step.role is not None:
        role: Any = step.role
        return page.get_by_role(role, name=step.name) if step.name else page.get_by_role(role)
    if step.text is not None:
        return page.get_by_text(step.text)
    if step.test_id is not None:
        return page.get_by_test_id(step.test_id)
    return page.locator(step.css or "")


class _Absent(Exception):
    """An optional step's element is not on the page."""


async def _element(page: Page, step: StepSpec, env: FlowEnv) -> Locator:
    found = _locate(page, step)
    if step.optional and await found.count() == 0:
        raise _Absent(step.describe())
    if step.pick == "first":
        return found.first
    if step.pick == "last":
        return found.last
    await found.first.wait_for(state="attached", timeout=env.timeout_ms)
    return found.nth(env.rng.randrange(await found.count()))


async def _act(page: Page, step: StepSpec, env: FlowEnv) -> None:
    timeout = env.timeout_ms
    if step.kind == "goto":
        url = urljoin(env.base_url, _fill(step.path, env))
        await page.goto(url, wait_until="load", timeout=timeout)
    elif step.kind == "wait_for" and step.url is not None:
        await page.wait_for_url(step.url, timeout=timeout)
    elif step.kind == "wait_for":
        await (await _element(page, step, env)).wait_for(state="visible", timeout=timeout)
    elif step.kind == "click":
        await (await _element(page, step, env)).click(timeout=timeout)
        await page.wait_for_load_state("load", timeout=timeout)
    elif step.kind == "fill":
        value = _fill(step.value, env)
        await (await _element(page, step, env)).fill(value, timeout=timeout)
    else:
        await _extract(page, step, env)


class _NoMatch(Exception):
    """An ``extract`` step's regular expression is not in the page's URL."""


async def _extract(page: Page, step: StepSpec, env: FlowEnv) -> None:
    """Read the step's value (element text or attribute, or a part of the URL) into
    the browser memory, or into the flow's answer (``answer.FIELD``: a whole number
    read as a number, as a JSON answer would carry it)."""
    if step.url is not None:
        found = re.search(step.url, page.url)
        if found is None:
            raise _NoMatch(f"{step.describe()}: not in {page.url[:200]}")
        text: str | None = found.group(1) if found.re.groups else found.group(0)
    else:
        element = await _element(page, step, env)
        if step.attr is not None:
            text = await element.get_attribute(step.attr, timeout=env.timeout_ms)
        else:
            text = await element.inner_text(timeout=env.timeout_ms)
    value = (text or "").strip()
    into = str(step.into)
    if into.startswith("answer."):
        env.answer[into.removeprefix("answer.")] = int(value) if value.isdigit() else value
    else:
        env.memory[into] = value


async def _timings(page: Page) -> tuple[float | None, float | None, float | None]:
    try:
        got = await page.evaluate(_TIMING_JS)
    except Exception:  # the page went away
        return None, None, None
    if not got:
        return None, None, None
    return tuple(round(float(v), 3) if v else None for v in got)  # type: ignore[return-value]


async def _one(page: Page, watch: PageWatch, step: StepSpec, env: FlowEnv) -> PageStep:
    """Run one step; raise :class:`_Absent` when an optional step finds nothing."""
    from playwright.async_api import Error

    offset = 0.0 if env.pacer is None else await env.pacer.next_step()
    started = time.perf_counter()
    error: str | None = None
    try:
        await _act(page, step, env)
    except (Error, TemplateError, _NoMatch) as exc:
        error = f"{step.describe()}: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}"
    latency = (time.perf_counter() - started) * 1000.0
    console, failed, navigated = watch.take()
    ttfb, dcl, load = await _timings(page) if navigated else (None, None, None)
    status = watch.status
    ok = error is None and 0 < status < 400
    if error is None and not ok:
        error = f"{step.describe()}: HTTP {status}"
    return PageStep(
        step.describe(),
        page.url,
        status,
        ok,
        latency,
        ttfb,
        dcl,
        load,
        console,
        failed,
        error and error[:300],
        offset,
    )


async def run_flow(
    page: Page, watch: PageWatch, steps: tuple[StepSpec, ...], env: FlowEnv
) -> FlowResult:
    """Run ``steps`` in order on ``page``; stop at the first failed step.

    An optional step that fails, or finds no element, ends the flow as a success and is
    not recorded (there was nothing to click). Never raises for what the page does.
    """
    result = FlowResult()
    for step in steps:
        try:
            measured = await _one(page, watch, step, env)
        except _Absent:
            return result
        if not measured.ok and step.optional:
            return result
        if not measured.ok and env.shoot is not None:
            shot = await env.shoot(page, len(result.steps), step)
            measured = dataclasses.replace(measured, screenshot=shot)
        result.steps.append(measured)
        if not measured.ok:
            result.ok, result.error = False, measured.error
            return result
    return result
