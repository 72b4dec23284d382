"""The declarative target's per-action plans keep behaviour (bench/load_overhead.py measures speed).

What the target works out once per action (``_plan``) must give what the general code
gives at every request:

* a compiled JSON path (:func:`~sim_engine.model.jsonpath.finder`) finds what ``find``
  finds, and fails where it fails;
* an ``extract`` rule's items, built inline when its fields are plain keys, equal the
  general ``field`` per field, errors included;
* an action is ``free`` (never blocked, no fallback walked) only when it picks, requires,
  filters and guards nothing;
* memory keeps items with one call per list when nothing was deleted lately, and keys
  them as :func:`item_key` does;
* a plan is never another action's that had its id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from helpers import DEMO_LOGIN, DEMO_SIGNUP
from sim_engine.model.api_spec import ActionSpec, ExtractSpec
from sim_engine.model.jsonpath import TemplateError, field, find, finder
from sim_engine.targets.declarative import DeclarativeTarget
from sim_engine.targets.declarative._memory import Items, item_key
from sim_engine.targets.declarative._plan import ActionPlan, RulePlan
from test_declarative import Call, FakeTransport, join, make_api, req


class _View(Mapping[str, Any]):
    """A Mapping that is not a dict (the general path must take it)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


_DOCS: list[Any] = [
    None,
    7,
    "text",
    [],
    {},
    [1, 2, 3],
    {"items": []},
    {"items": [{"id": 1}, {"id": 2, "x": {"y": 3}}, {"x": {"y": 4}}, 5]},
    {"items": {"a": {"id": 1}, "b": {"id": 2}}},
    {"data": {"user": {"id": 9, "tags": ["a", "b"]}}},
    {"data": [{"user": {"id": 1}}, {"user": {"id": 2}}, {"other": 0}]},
    [[1, 2], [3], []],
    _View({"items": [{"id": 1}], "data": _View({"user": {"id": 4}})}),
]
_PATHS = [
    "", "items", "items[*]", "items[0]", "items[-1]", "items[5]", "items[*].id",
    "items[*].x.y", "data.user", "data.user.id", "data.user.tags[*]", "data[*].user.id",
    "data.user.tags[-2]", "[*]", "[0]", "[-1]", "[*][*]", "[*][0]", "missing", "items.id",
]  # fmt: skip


@pytest.mark.parametrize("path", _PATHS)
def test_a_compiled_path_finds_what_find_finds(path: str) -> None:
    run = finder(path)
    for doc in _DOCS:
        assert run(doc) == find(doc, path), (path, doc)


@pytest.mark.parametrize("path", ["items..id", ".items", "items[", "items[x]", "a.[0]"])
def test_a_malformed_path_fails_to_compile_as_find_fails(path: str) -> None:
    with pytest.raises(TemplateError) as compiled:
        finder(path)
    with pytest.raises(TemplateError) as general:
        find({}, path)
    assert str(compiled.value) == str(general.value)


def _general_items(doc: Any, rule: ExtractSpec) -> list[dict[str, Any]]:
    """What the target computed per request before plans (find, then field per field)."""
    values = find(doc, rule.path)
    if values is None:
        raise KeyError(rule.path)
    return [{n: field(v, d) for n, d in rule.fields.items()} for v in values]


def _outcome(take: Callable[[Any], list[dict[str, Any]]], answer: Any) -> tuple[str, Any]:
    try:
        return "ok", take(answer)
    except KeyError as exc:
        return "KeyError", str(exc)
    except TemplateError as exc:
        return "TemplateError", str(exc)


_RULES = [
    {"path": "items[*]", "fields": {"id": "id"}},
    {"path": "items[*]", "fields": {"id": "id", "who": "author_id", "n": "stats.views"}},
    {"path": "items[*]", "fields": {"id": "id", "n": "stats.views"}},
    {"path": "items[*]", "fields": {"id": "id", "first_tag": "tags[0]"}},
    {"path": "items[*]", "fields": {}},
    {"path": "", "fields": {"id": "id"}},
    {"path": "items[*]", "fields": {"id": "id", "bad": "a..b"}},
    {"path": "items..x", "fields": {"id": "id"}},
    {"path": "nothing[*]", "fields": {"id": "id"}},
]
_ANSWERS: list[Any] = [
    {"items": []},
    {"items": [{"id": 1, "author_id": 2, "stats": {"views": 3}, "tags": ["t"]}]},
    {"items": [{"id": 1, "author_id": 2, "stats": {"views": 3}, "tags": []}]},
    {"items": [{"id": 1, "stats": {"views": 3}, "tags": ["t"]}, {"id": 2}]},
    {"items": [{"id": 1}, [1, 2], None, "s"]},
    {"items": [_View({"id": 5, "author_id": 6, "stats": {"views": 0}, "tags": ["u"]})]},
    {"id": 3, "author_id": 4},
    [1, 2],
]


@pytest.mark.parametrize("rule", _RULES, ids=lambda r: f"{r['path']}:{','.join(r['fields'])}")
def test_a_compiled_rule_takes_what_the_general_path_takes(rule: dict[str, Any]) -> None:
    spec = ExtractSpec.model_validate({**rule, "to": "memory.x"})
    plan = RulePlan.of(spec)
    for answer in _ANSWERS:
        expected = _outcome(lambda doc: _general_items(doc, spec), answer)
        assert _outcome(plan.items, answer) == expected, (rule, answer)


def test_plain_fields_are_built_inline_and_dotted_ones_by_field() -> None:
    plain = RulePlan.of(ExtractSpec(path="items[*]", to="memory.x", fields={"a": "id"}))
    dotted = RulePlan.of(ExtractSpec(path="items[*]", to="memory.x", fields={"a": "b.c"}))
    assert plain.plain == (("a", "id"),) and dotted.plain is None
    # a plain field missing from a dict element: the same KeyError as field() raises
    with pytest.raises(KeyError) as missing:
        plain.items({"items": [{"id": 1}, {"other": 2}]})
    assert str(missing.value) == "'id'"


async def test_dotted_and_plain_extract_rules_keep_the_same_items() -> None:
    answer = {"items": [{"id": i, "author_id": 10 + i, "meta": {"author": 10 + i}} for i in (1, 2)]}
    api = make_api(
        actions={
            "plain": {"path": "/a", "extract": [{"path": "items[*]", "to": "memory.p",
                                                 "fields": {"id": "id", "who": "author_id"}}]},
            "dotted": {"path": "/b", "extract": [{"path": "items[*]", "to": "memory.d",
                                                  "fields": {"id": "id", "who": "meta.author"}}]},
        },
        memory={"p": 10, "d": 10},
    )  # fmt: skip
    target = DeclarativeTarget(FakeTransport(lambda call: (200, answer)), api, seed=1)
    assert (await target.send(req("plain"))).ok and (await target.send(req("dotted"))).ok
    memory = target.memory(1)
    assert memory is not None
    assert memory["memory.p"] == memory["memory.d"] == [{"id": 1, "who": 11}, {"id": 2, "who": 12}]


async def test_an_element_lacking_a_plain_field_is_a_bad_answer_unless_optional() -> None:
    answer = {"items": [{"id": 1}, {"title": "no id"}]}
    rule = {"path": "items[*]", "to": "memory.p"}
    api = make_api(
        actions={"strict": {"path": "/a", "extract": [rule]},
                 "loose": {"path": "/a", "extract": [{**rule, "optional": True}]}},
        memory={"p": 10},
    )  # fmt: skip
    target = DeclarativeTarget(FakeTransport(lambda call: (200, answer)), api, seed=1)
    strict = await target.send(req("strict"))
    assert not strict.ok and strict.error is not None
    assert strict.error.startswith("bad answer (missing field 'id')")
    assert (await target.send(req("loose"))).ok
    assert not target.has(1, "memory.p")  # all or nothing: neither kept id 1


_GUARDS: list[dict[str, Any]] = [
    {"pick": {"post": "memory.p"}},
    {"requires": ["memory.p"]},
    {"max_open": {"key": "memory.p", "limit": 1}},
    {"pick": {"post": "memory.p"}, "where": {"post": {"id": {"ne": 0}}}},
]


def test_only_an_action_that_picks_requires_filters_and_guards_nothing_is_free() -> None:
    assert ActionPlan.of(ActionSpec(path="/a"), ()).free
    for guard in _GUARDS:
        assert not ActionPlan.of(ActionSpec.model_validate({"path": "/a", **guard}), ()).free


@pytest.mark.parametrize("guard", _GUARDS[:2], ids=["pick", "requires"])
async def test_an_action_with_an_empty_list_is_blocked_and_falls_back(
    guard: dict[str, Any],
) -> None:
    api = make_api(
        actions={"guarded": {"path": "/x/{post.id}" if "pick" in guard else "/x", **guard,
                             "fallback": "feed"},
                 "feed": {"path": "/feed"}},
        memory={"p": 5},
    )  # fmt: skip
    transport = FakeTransport(lambda call: (200, {}))
    target = DeclarativeTarget(transport, api, seed=1)
    assert target.resolve("guarded", 1) == "feed"
    assert target.resolve("feed", 1) == "feed"
    assert target.resolve("a_workflow", 1) == "a_workflow"
    skipped = await target.send(req("guarded"))
    assert skipped.skipped and skipped.error == "not possible: memory.p is empty"
    assert transport.calls == []


async def test_a_max_open_guard_blocks_once_its_key_holds_the_limit() -> None:
    api = make_api(
        actions={"open": {"method": "POST", "path": "/req", "max_open": {"key": "memory.p",
                                                                          "limit": 1},
                          "extract": [{"to": "memory.p"}]}},
        memory={"p": 5},
    )  # fmt: skip
    target = DeclarativeTarget(FakeTransport(lambda call: (201, {"id": 1})), api, seed=1)
    assert target.resolve("open", 1) == "open"
    assert (await target.send(req("open"))).post_id == 1  # the whole answer is the item
    assert target.resolve("open", 1) is None
    blocked = await target.send(req("open"))
    assert blocked.error == "not possible: memory.p holds 1 or more (max_open)"


@pytest.mark.parametrize(
    "ident", [1, "a", True, 1.5, None, [1], {"k": 1}, 0, ""], ids=lambda v: repr(v)
)
def test_items_added_together_are_keyed_as_item_key_keys_them(ident: Any) -> None:
    together, one_by_one = Items(3, 0), Items(3, 0)
    batch = [{"id": ident, "n": n} for n in range(2)] + [{"id": 99}, {"id": 98}, {"x": 1}]
    together.add_all(batch)
    for item in batch:
        one_by_one.add(item)
    assert list(together.items) == list(one_by_one.items) == [item_key(i) for i in batch[-3:]]
    keyed = Items(10, 0)
    keyed.add_all(batch[:2])
    assert list(keyed.items) == list(dict.fromkeys(item_key(i) for i in batch[:2]))


async def test_a_read_after_a_delete_does_not_bring_the_item_back_but_a_create_does() -> None:
    def handler(call: Call) -> Any:
        if call.method == "DELETE":
            return 204, None
        return (201 if call.method == "POST" else 200), {"items": [{"id": 1}, {"id": 2}]}

    api = make_api(
        actions={
            "feed": {"path": "/feed", "extract": [{"path": "items[*]", "to": "memory.p"}]},
            "make": {"method": "POST", "path": "/feed",
                     "extract": [{"path": "items[*]", "to": "memory.p"}]},
            "drop": {"method": "DELETE", "path": "/p/{post.id}", "pick": {"post": "memory.p"},
                     "pick_strategy": "latest", "forget": "post", "expect": [204]},
        },
        memory={"p": 5},
    )  # fmt: skip
    target = DeclarativeTarget(FakeTransport(handler), api, seed=1)
    assert (await target.send(req("feed"))).ok
    assert (await target.send(req("drop"))).post_id == 2
    assert (await target.send(req("feed"))).ok  # read just before the delete: 2 stays gone
    assert target.memory(1) == {"memory.p": [{"id": 1}]}
    assert (await target.send(req("make"))).ok  # a create vouches for 2 again
    assert target.memory(1) == {"memory.p": [{"id": 1}, {"id": 2}]}


def test_a_plan_is_never_another_actions_that_had_its_id() -> None:
    api = make_api(actions={"feed": {"path": "/posts"}, "one": {"path": "/posts/{user.id}"}})
    target = DeclarativeTarget(FakeTransport(lambda call: (200, {})), api, seed=1)
    feed, one = api.actions["feed"], api.actions["one"]
    assert target._plan_of(feed) is target._plan_of(feed)  # worked out once
    assert target._plan_of(feed).literal[:2] == ("GET", "/posts")
    target._plans[id(one)] = target._plan_of(feed)  # as if ``one`` reused a freed id
    plan = target._plan_of(one)
    assert plan.action is one and plan.literal == () and plan.where == "GET /posts/{user.id}"


async def test_every_scheme_sends_its_credentials_on_actions() -> None:
    schemes: dict[str, tuple[str, str]] = {
        "bearer": ("Authorization", "Bearer tok-1"),
        "token": ("Authorization", "Token tok-1"),
        "header": ("X-Token", "tok-1"),
    }
    for scheme, (name, value) in schemes.items():
        auth = {"signup": DEMO_SIGNUP, "login": DEMO_LOGIN, "scheme": scheme, "header": "X-Token"}
        api = make_api(auth=auth, actions={"feed": {"path": "/posts"}})

        def handler(call: Call) -> Any:
            return (201, {"id": 4}) if call.path == "/users" else (200, {"token": "tok-1"})

        transport = FakeTransport(handler)
        target = DeclarativeTarget(transport, api, seed=1)
        await join(target)
        assert (await target.send(req("feed"))).ok
        sent = transport.calls[-1].headers
        assert sent[name] == value and sent["X-Sim-Time"], scheme


async def test_a_read_of_one_item_names_it_in_the_record_and_a_listing_does_not() -> None:
    api = make_api(
        actions={"one": {"path": "/p/7", "extract": [{"to": "memory.p"}]},
                 "list": {"path": "/p", "extract": [{"path": "items[*]", "to": "memory.p"}]}},
        memory={"p": 5},
    )  # fmt: skip
    answers = {"/p/7": {"id": 7}, "/p": {"items": [{"id": 8}]}}
    target = DeclarativeTarget(FakeTransport(lambda call: (200, answers[call.path])), api, seed=1)
    assert (await target.send(req("one"))).post_id == 7  # not a create: from its extract rule
    assert (await target.send(req("list"))).post_id is None
