"""Links between operations in the OpenAPI import: which answers fill which memory, with
which fields, and how each path parameter is filled from them.

* **Key fields.** The path parameters that address an item of a resource R
  (``/articles/{slug}``, ``/buckets/{bucket_id}/collections``) name the fields its
  items are stored with: a parameter is filled from the field of the **same name**
  (``slug``, ``username``), or the same name without the resource's prefix
  (``bucket_id`` -> ``id``, ``article_slug`` -> ``slug``), or, for an id parameter
  (``id``, ``X_id``, ``uuid``), the item's id field (stored as ``id``). A ``slug`` or
  ``username`` parameter is never filled with a numeric id: when no answer has such a
  field, the action gets weight 0 and a comment.
* **Producers.** A list answer fills ``seen_R``, a create answer ``own_R``, with the key
  fields (and the id). A resource nothing lists is learnt from references in other
  answers: ``post_id`` fields, and objects carrying a key field (an article's
  ``author: {username}`` fills ``seen_profiles`` for ``/profiles/{username}``).
* **Parents travel with their children.** A producer on a nested path
  (``GET /buckets/{bucket_id}/collections``) stores the parent key its items hold, or
  copies the value its path used (``copy: {bucket_id: bucket.id}``); an action on
  ``/buckets/{bucket_id}/collections/{id}`` then picks one collection and takes the
  bucket from it (``{collection.bucket_id}``), so parent and child always belong
  together.

Part of :mod:`sim_engine.api.openapi` (internal).
"""

from __future__ import annotations

import re
from typing import Any

from sim_engine.api.openapi.schemas import (
    _ID_FIELDS,
    _USER_REF_WORDS,
    _camel,
    _item_id_field,
    _list_items,
    _norm,
    _Op,
    _resource_of,
    _singular,
    _snake,
)
from sim_engine.api.openapi.state import Producer, _State

_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_USER_KEYS = ("username", "user_name", "login", "handle", "screen_name", "nickname")
_WRAPPERS = ("data", "item", "result")


def is_param(segment: str) -> bool:
    """Whether a path segment is a whole parameter (``{slug}``)."""
    return segment.startswith("{") and segment.endswith("}")


def stored_name(field: str) -> str:
    """The name an item's field is stored under: ``id`` for id fields, else itself."""
    return "id" if field in _ID_FIELDS else field


def id_param(name: str) -> bool:
    """Whether a path parameter names an id (``id``, ``post_id``, ``postId``, ``uuid``)."""
    return bool(re.search(r"(^|_)(id|uuid|guid|pk)$", _snake(name)))


def field_for(param: str, resource: str, props: dict[str, Any]) -> str | None:
    """The property of an item of ``resource`` that fills path parameter ``param``.

    Same name; else the name without the resource's prefix (``bucket_id`` -> ``id``);
    else, for an id parameter, the item's id field. None: the item has no such field
    (a ``slug`` is never an id).
    """
    if param in props:
        return param
    snake = _snake(param)
    bare = re.sub(rf"^{re.escape(_singular(resource))}_", "", snake)
    for name in props:
        if _snake(name) in (snake, bare):
            return str(name)
    if id_param(param) or snake == _singular(resource):  # /sessions/{session}
        return _item_id_field({"properties": props})
    return None


def created_item(schema: Any, resource: str) -> tuple[str, dict[str, Any]] | None:
    """``(where, item schema)`` of the item a create answer returns (None: not an object).

    The answer itself when it has an id or a property named like one of the resource's
    key fields, else a wrapper property (``data``, ``item``, ``result``, the resource's
    singular, or the only object property): ``{"article": {...}}``.
    """
    node = _norm(schema)
    if node.get("type") not in ("object", None):
        return None
    props = node.get("properties") or {}
    single = _singular(resource)
    if _item_id_field(node) or any(k in props for k in (f"{single}_id", f"{_camel(single)}Id")):
        return "", node
    objects = {k: _norm(v) for k, v in props.items() if _norm(v).get("type") == "object"}
    for wrapper in (*_WRAPPERS, single, _camel(single)):
        if wrapper in objects:
            return wrapper, objects[wrapper]
    if len(objects) == 1 and len(props) == 1:
        key = next(iter(objects))
        return key, objects[key]
    return "", node


class _LinkSteps(_State):
    """Finds the producers of each memory key and fills path parameters from them."""

    def _skip_reason(self, op: _Op) -> str | None:
        """Why an operation is not an action (None: it is one); the actions step says."""
        return None

    def _index_params(self) -> None:
        """``item_params[R]``: the path parameter names that address an item of R."""
        for op in self.ops:
            for index, segment in enumerate(op.segments):
                if is_param(segment):
                    resource = _resource_of(op.segments, index)
                    self.item_params.setdefault(resource, set()).add(segment[1:-1])

    def key_fields(self, resource: str, item: dict[str, Any]) -> dict[str, str]:
        """Stored field -> property of an item schema: its id and the key fields the
        resource's path parameters name (only names usable in placeholders)."""
        props = item.get("properties") or {}
        found: dict[str, str] = {}
        id_field = _item_id_field(item)
        if id_field:
            found["id"] = id_field
        for param in sorted(self.item_params.get(resource, ())):
            prop = field_for(param, resource, props)
            if prop is not None and _IDENT.match(stored_name(prop)):
                found[stored_name(prop)] = prop
        if not found and self.assumed_id(resource, item):
            found["id"] = "id"
            self.assumed.add(resource)
        return found

    def assumed_id(self, resource: str, item: dict[str, Any]) -> bool:
        """Whether items of ``resource`` may be taken to have an ``id`` their schema does not
        declare: an object that says it is open (``additionalProperties`` given, not false)
        and that the paths address only by id parameters (``/buckets/{id}``,
        ``/buckets/{bucket_id}/...``), as Kinto documents its objects."""
        params = self.item_params.get(resource, set())
        return (
            item.get("type") == "object"
            and item.get("additionalProperties", False) is not False
            and bool(params)
            and all(id_param(p) for p in params)
        )

    def _key_of(self, resource: str, param: str, fields: Any) -> str | None:
        """The stored field among ``fields`` (names) that fills ``param`` (None: none does)."""
        return field_for(param, resource, {name: {} for name in fields})

    def _producers(self) -> None:
        """Fill ``seen_from`` (lists), ``own_from`` (creates) and ``refs_from`` (references)."""
        for op in self.ops:
            if op is self.signup or op is self.login or self._skip_reason(op) or not op.resource:
                continue
            if op.kind == "list":
                listed = _list_items(op.response_schema())
                assert listed is not None
                where, items = listed
                fields = self.key_fields(op.resource, items) | _parent_refs(op, items)
                if fields:
                    self.seen_from.setdefault(op.resource, []).append(Producer(op, where, fields))
                self._references(op, where, items)
            elif op.kind == "create":
                created = created_item(op.response_schema(), op.resource)
                assert created is not None
                fields = self.key_fields(op.resource, created[1]) | _parent_refs(op, created[1])
                self.own_from.setdefault(op.resource, []).append(Producer(op, created[0], fields))
            elif op.kind == "read":
                found = created_item(op.response_schema(), op.resource)
                if found is not None:
                    self._references(op, found[0], found[1])
        for resource in sorted(self.assumed):
            self.result.header_notes.append(
                f"the answers' {resource} items declare no id: taken from their id field, "
                f"as the paths' id parameters suggest"
            )

    def _is_create(self, op: _Op) -> bool:
        """Whether a ``POST`` on a collection answers with an item that has a key field."""
        if not op.resource:
            return False
        created = created_item(op.response_schema(), op.resource)
        return created is not None and bool(self.key_fields(op.resource, created[1]))

    def _references(self, op: _Op, where: str, item: dict[str, Any]) -> None:
        """Note what answer items tell of other resources: ``post_id`` fields, and objects
        or fields carrying another resource's key (``author: {username}``)."""
        props = item.get("properties") or {}
        for prop in props:
            resource = self._referenced_resource(prop)
            if resource is not None and resource != op.resource:
                self.refs_from.setdefault(resource, []).append(Producer(op, where, {"id": prop}))
        for resource, params in self.item_params.items():
            if resource == op.resource:
                continue
            for param in sorted(p for p in params if not id_param(p)):
                path = self._carrier(resource, param, props)
                if path is not None:
                    fields = {stored_name(param): path}
                    self.refs_from.setdefault(resource, []).append(Producer(op, where, fields))

    def _carrier(self, resource: str, param: str, props: dict[str, Any]) -> str | None:
        """Where an item of another resource holds ``resource``'s key ``param``:
        ``article_slug``, or ``article.slug``, or ``author.username`` for a user key."""
        single = _singular(resource)
        for name in (f"{single}_{param}", f"{_camel(single)}{param[:1].upper()}{param[1:]}"):
            if name in props:
                return name
        for name, sub in props.items():
            sub_n = _norm(sub)
            if sub_n.get("type") != "object" or param not in (sub_n.get("properties") or {}):
                continue
            user_key = _snake(param) in _USER_KEYS and _snake(str(name)) in _USER_REF_WORDS
            if _snake(str(name)) == single or user_key:
                return f"{name}.{param}"
        return None

    def _referenced_resource(self, prop: str) -> str | None:
        """The resource a ``X_id`` / ``XId`` property refers to (None: not a reference)."""
        match = re.fullmatch(r"(.+)_id", _snake(prop))
        if not match:
            return None
        word = match.group(1)
        if word in _USER_REF_WORDS or word.endswith(("_user", "_author")):
            return self.user_resource
        for resource in {op.resource for op in self.ops if op.resource}:
            if _singular(resource) == word:
                return resource
        return None

    def producers(self, key: str) -> list[Producer]:
        """The producers of ``memory.seen_R`` / ``memory.own_R`` (references count for
        ``seen_R`` only when no list fills it)."""
        kind, _, name = key.removeprefix("memory.").partition("_")
        if kind == "own":
            return list(self.own_from.get(name, []))
        return list(self.seen_from.get(name) or self.refs_from.get(name, []))

    def stored_fields(self, key: str) -> set[str]:
        """The fields every item of ``key`` has: those every producer stores, with the
        parent keys it copies (empty: nothing fills the key)."""
        producers = self.producers(key)
        if not producers:
            return set()
        return set.intersection(*(set(p.fields) | self.copied_fields(p.op) for p in producers))

    def copied_fields(self, op: _Op) -> set[str]:
        """The parent keys a producer copies into its items: one per path parameter
        (``extract.copy``, from the values its path used)."""
        return {
            parent_field(_resource_of(op.segments, i), s[1:-1])
            for i, s in enumerate(op.segments)
            if is_param(s)
        }

    def stores(self, key: str, field: str) -> bool:
        """Whether every item of ``key`` has ``field`` (see :meth:`stored_fields`)."""
        return field in self.stored_fields(key)


def _parent_refs(op: _Op, item: dict[str, Any]) -> dict[str, str]:
    """Parent keys an item of a nested path holds itself (a comment's ``post_id`` under
    ``/posts/{post_id}/comments``): stored field -> property."""
    props = item.get("properties") or {}
    found: dict[str, str] = {}
    for index, segment in enumerate(op.segments):
        if not is_param(segment):
            continue
        field = parent_field(_resource_of(op.segments, index), segment[1:-1])
        for name in props:
            if _snake(str(name)) == field:
                found[field] = str(name)
    return found


def parent_field(resource: str, param: str) -> str:
    """The field a child item keeps its parent's key in: ``bucket_id``, ``article_slug``."""
    stored = "id" if id_param(param) else stored_name(param)
    return f"{_singular(resource)}_{stored}"
