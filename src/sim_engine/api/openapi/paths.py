"""Paths, picks, extraction rules and names of the actions the OpenAPI import writes.

Part of :mod:`sim_engine.api.openapi` (internal); the rules are in :mod:`.links`.
"""

from __future__ import annotations

import re
from typing import Any

from sim_engine.api.openapi.links import _USER_KEYS, _LinkSteps, id_param, is_param, parent_field
from sim_engine.api.openapi.schemas import _id_like, _norm, _Op, _resource_of, _singular, _snake
from sim_engine.api.openapi.values import _Values

_PLACEHOLDER = re.compile(r"^\{[A-Za-z_]\w*\.[A-Za-z_][\w.]*\}$")


class _Pick:
    """One item an action picks, and what it fills a path parameter with."""

    def __init__(self, placeholder: str, name: str | None, key: str | None) -> None:
        self.placeholder = placeholder  # "{article.slug}", "{user.id}"
        self.name = name  # the pick's name (None: the user itself)
        self.key = key  # the memory key it picks from (None: the user itself)


class _PathSteps(_LinkSteps):
    """Builds an action's path (one pick for an item and its parents), its extraction
    rules (with the parent keys items hold) and its name."""

    def _action_path(
        self, op: _Op, values: _Values, picks: dict[str, str], notes: list[str]
    ) -> tuple[str, str | None]:
        """The action's path template, and the pick a delete forgets (None: none).

        The deepest item parameter is picked; the parameters before it come from that
        item's parent keys when its producers store them, else from picks of their
        own (with a comment).
        """
        filled: dict[int, str] = {}
        refs: list[tuple[int, str]] = []
        for index, segment in enumerate(op.segments):
            if not is_param(segment):
                continue
            name = segment[1:-1]
            param = next(
                (p for p in op.params if p.get("name") == name and p.get("in") == "path"), {}
            )
            schema = _norm(param.get("schema"))
            if (schema.get("enum") or schema.get("format") in ("date", "date-time")) and not (
                _id_like(name)
            ):
                filled[index] = str(values.scalar(schema, name))
            else:
                refs.append((index, name))
        forget = self._fill_refs(op, refs, picks, notes, filled) if refs else None
        self.path_values[op.label] = {i: v for i, v in filled.items() if _PLACEHOLDER.match(v)}
        segments = [filled.get(i, s) for i, s in enumerate(op.segments)]
        path = self.prefix + "/" + "/".join(segments)
        if op.path.endswith("/") and segments:
            path += "/"
        return path, forget

    def _fill_refs(
        self,
        op: _Op,
        refs: list[tuple[int, str]],
        picks: dict[str, str],
        notes: list[str],
        filled: dict[int, str],
    ) -> str | None:
        """Fill the item parameters ``refs`` (index, name) into ``filled``; the pick a delete
        of the addressed item forgets."""
        index, name = refs[-1]
        resource = _resource_of(op.segments, index)
        target = index == len(op.segments) - 1
        mode = {"read": "seen", "update": "own", "delete": "own"}.get(op.kind, "seen")
        deletes = target and op.kind == "delete"
        anchor = self._pick(resource, name, mode if target else "seen", picks, notes, deletes)
        filled[index] = anchor.placeholder
        for parent_index, parent_name in refs[:-1]:
            parent = _resource_of(op.segments, parent_index)
            field = parent_field(parent, parent_name)
            if anchor.key is not None and self.stores(anchor.key, field):
                filled[parent_index] = f"{{{anchor.name}.{field}}}"
            else:
                filled[parent_index] = self._pick(
                    parent, parent_name, "seen", picks, notes
                ).placeholder
                if anchor.key is not None:
                    notes.append(
                        f"{{{parent_name}}} is picked apart from the {_singular(resource)}: "
                        f"{anchor.key} does not keep its {parent}"
                    )
        return anchor.name if deletes else None

    def _pick(
        self,
        resource: str,
        param: str,
        mode: str,
        picks: dict[str, str],
        notes: list[str],
        strict: bool = False,
    ) -> _Pick:
        """Pick an item of ``resource`` for path parameter ``param``.

        ``mode`` ``own`` prefers ``own_R`` (falling back to ``seen_R`` unless ``strict``:
        a delete only deletes what the user created), ``seen`` prefers ``seen_R``. Items
        of the user resource the user acts on are the user itself (``{user.id}``).
        """
        seen = f"memory.seen_{resource}"
        if resource == self.user_resource and (mode == "own" or not self.filled(seen)):
            field = "username" if _snake(param) in _USER_KEYS else "id"
            return _Pick(f"{{user.{field}}}", None, None)
        key = self._key_for(resource, mode, strict, notes)
        name = next((n for n, where in picks.items() if where == key), None)
        if name is None:
            base = _singular(resource)
            base = "other_user" if base == "user" else base
            if not re.match(r"^[A-Za-z_]", base):
                base = f"item_{base}"
            name, n = base, 2
            while name in picks:
                name, n = f"{base}_{n}", n + 1
            picks[name] = key
        stored = self.stored_fields(key)
        found = self._key_of(resource, param, stored)
        field = found if found is not None else "id" if id_param(param) else _snake(param)
        if found is None and stored:
            self.field_problems.append(
                f"nothing this API returns gives the {param} of {resource} ({key} holds "
                f"{', '.join(sorted(stored))}): never filled with another field"
            )
        if resource == self.user_resource or field in _USER_KEYS:
            self.not_mine[name] = "username" if field in _USER_KEYS else "id"
        return _Pick(f"{{{name}.{field}}}", name, key)

    def _key_for(self, resource: str, mode: str, strict: bool, notes: list[str]) -> str:
        """The memory key a pick of ``resource`` takes from (see :meth:`_pick`)."""
        seen, own = f"memory.seen_{resource}", f"memory.own_{resource}"
        if mode != "own":
            return seen if self.filled(seen) or not self.filled(own) else own
        if self.filled(own) or strict:
            return own
        if self.filled(seen):
            notes.append(
                f"nothing creates {resource}: picks from what the user has seen (edit if "
                "only owners may change them)"
            )
            return seen
        return own

    def _extract(self, op: _Op) -> list[dict[str, Any]]:
        """The extraction rules of a producer: its key fields, the parent keys its items
        hold, and the others its path used copied into each item (``copy``)."""
        copy = {
            parent_field(_resource_of(op.segments, i), op.segments[i][1:-1]): value[1:-1]
            for i, value in sorted(self.path_values.get(op.label, {}).items())
        }
        rules: list[dict[str, Any]] = []
        for table, prefix in ((self.own_from, "own"), (self.seen_from, "seen")):
            for resource, producers in table.items():
                for producer in producers:
                    if producer.op is op:
                        rule: dict[str, Any] = {
                            "path": producer.where,
                            "to": f"memory.{prefix}_{resource}",
                            "fields": dict(producer.fields),
                        }
                        copied = {k: v for k, v in copy.items() if k not in producer.fields}
                        if copied:
                            rule["copy"] = copied
                        rules.append(rule)
        for resource, producers in self.refs_from.items():
            if self.seen_from.get(resource):
                continue  # a list operation already shows them
            for producer in producers:
                if producer.op is op:
                    rules.append(
                        {
                            "path": producer.where,
                            "to": f"memory.seen_{resource}",
                            "fields": dict(producer.fields),
                        }
                    )
        return rules

    def _name(self, op: _Op) -> str:
        """The action's name: the ``operationId`` in snake case (FastAPI's path-and-method
        suffix dropped), else method and path; a repeated word said once
        (``get_records_records`` -> ``get_records``)."""
        op_id = str(op.spec.get("operationId") or "")
        if op_id:
            suffix = re.sub(r"\W", "_", op.path) + "_" + op.method.lower()
            if op_id.endswith(suffix) and len(op_id) > len(suffix):
                op_id = op_id[: -len(suffix)]  # FastAPI's generated ids: name + path + method
            base = _snake(op_id)
        else:
            words = [re.sub(r"[{}]", "", s) for s in op.segments]
            base = _snake("_".join([op.method.lower(), *words]))
        base = _once(base)
        if base in ("sign_up", "log_in", "delete_account"):
            base = f"{base}_op"  # the engine's own action names
        name, n = base, 2
        while name in self.actions:
            name, n = f"{base}_{n}", n + 1
        return name


def _once(name: str) -> str:
    """``name`` with a word that repeats the one before it, or is its plural, said once:
    ``get_records_records`` -> ``get_records``, ``list_post_posts`` -> ``list_posts``
    (``get_widgets_widget_id`` stays)."""
    words: list[str] = []
    for word in name.split("_"):
        if (words and word and word in (words[-1], f"{words[-1]}s", f"{words[-1]}es")) or (
            words and word and words[-1].endswith("y") and word == words[-1][:-1] + "ies"
        ):
            words[-1] = word
        else:
            words.append(word)
    return "_".join(words) or name
