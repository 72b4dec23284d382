"""The auth step of the OpenAPI import: sign-up and log-in operations, token scheme.

Part of :mod:`sim_engine.api.openapi` (internal).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sim_engine.api.openapi.links import _LinkSteps, created_item
from sim_engine.api.openapi.schemas import _created_id, _find_field, _map, _norm, _Op, _seq, _snake
from sim_engine.api.openapi.values import _SKIP, _Values

_TOKEN_FIELDS = (
    "access_token", "accessToken", "token", "jwt", "id_token", "idToken", "auth_token",
    "authToken", "session_token", "sessionToken", "bearer", "key",
)  # fmt: skip
_SIGNUP_SEGMENTS = (
    "users", "accounts", "members", "register", "registration", "signup", "sign-up",
    "sign_up", "join", "customers",
)  # fmt: skip
_SIGNUP_OPID = re.compile(r"register|sign_?up|create_?(user|account|member|customer)", re.I)
_LOGIN_WORDS = re.compile(r"log_?in|sign_?in|token|auth|session", re.I)
_NOT_LOGIN = re.compile(r"log_?out|sign_?out|refresh|revoke|introspect|verify|reset", re.I)


class _AuthSteps(_LinkSteps):
    """Finds how users sign up and log in, and writes ``api.auth``."""

    def _find_auth(self) -> None:
        signups = []
        for op in self.ops:
            if op.method != "POST" or re.search(r"password|reset", op.path, re.I):
                continue
            schema, _, _ = op.request_schema()
            if not holds_password(schema):
                continue
            last = op.segments[-1].lower() if op.segments else ""
            op_id = str(op.spec.get("operationId") or "")
            if last in _SIGNUP_SEGMENTS or _SIGNUP_OPID.search(op_id):
                signups.append(op)
        self.signup = signups[0] if signups else None
        if self.signup is not None:
            last = self.signup.segments[-1].lower()
            self.user_resource = (
                _snake(last) if last in ("users", "accounts", "members", "customers") else "users"
            )
        elif any(s.lower() == "users" for op in self.ops for s in op.segments):
            self.user_resource = "users"
        candidates: list[tuple[int, _Op]] = []
        for op in self.ops:
            if op.method != "POST" or op is self.signup:
                continue
            text = f"{op.path} {op.spec.get('operationId') or ''}"
            if not _LOGIN_WORDS.search(text) or _NOT_LOGIN.search(text):
                continue
            has_token = _find_field(op.response_schema(), _TOKEN_FIELDS) is not None
            strong = bool(re.search(r"log_?in|sign_?in|token", text, re.I))
            if has_token or strong:
                candidates.append((0 if has_token else 1, op))
        if candidates:
            self.login = min(candidates, key=lambda c: c[0])[1]

    def _auth(self) -> dict[str, Any]:
        """The ``api.auth`` section: sign-up, log-in and scheme, from the security schemes."""
        notes = self.result.header_notes
        schemes = self._security_schemes()
        auth: dict[str, Any] = {}
        if self.signup is not None:
            auth["signup"] = self._auth_request(self.signup, signup=True)
        kinds = {name: _norm(s) for name, s in schemes.items()}
        if self.options.api_key is not None:
            self._given_key(auth, kinds, notes)
        else:
            self._auth_scheme(auth, kinds, notes)
        if self.signup is not None or "login" in auth:
            user_id = self._user_id_path()
            auth["user_id_path"] = user_id
            if user_id is None:
                notes.append("no user id in the sign-up (or log-in) answer: {user.id} is unknown")
        if auth.get("scheme") in ("bearer", "basic") and self.signup is None:
            notes.append(
                "no sign-up operation found: the simulated users must already exist on the "
                "target, or add auth.signup"
            )
        return auth

    def _given_key(
        self, auth: dict[str, Any], kinds: dict[str, dict[str, Any]], notes: list[str]
    ) -> None:
        """``scheme: api_key`` with the key given to ``init`` (``--api-key``), in the header
        given (``--api-key-header``), else the ``apiKey`` scheme's, else ``Authorization``."""
        keys = [s for s in kinds.values() if s.get("type") == "apiKey" and s.get("in") == "header"]
        header = self.options.api_key_header or (
            str(keys[0].get("name")) if keys and keys[0].get("name") else "Authorization"
        )
        auth["scheme"] = "api_key"
        auth["header"] = header
        auth["api_key"] = self.options.api_key
        notes.append(f"every request sends the key given with --api-key in the {header} header")

    def _usable_login(self, notes: list[str]) -> _Op | None:
        """The log-in operation, unless it takes a form body (it must then be written by hand)."""
        if self.login is None:
            return None
        login_schema, _, other = self.login.request_schema()
        if other and login_schema is None:
            notes.append(
                f"{self.login.label} takes a form body, not JSON: write auth.login by hand"
            )
            return None
        return self.login

    def _auth_scheme(
        self, auth: dict[str, Any], kinds: dict[str, dict[str, Any]], notes: list[str]
    ) -> None:
        """Fill ``scheme`` (and ``login``, ``token_path``, ``header``...) from the schemes."""
        bearer = [n for n, s in kinds.items() if _is_token_scheme(s)]
        basic = [
            n
            for n, s in kinds.items()
            if s.get("type") == "http" and str(s.get("scheme", "")).lower() == "basic"
        ]
        api_key = [n for n, s in kinds.items() if s.get("type") == "apiKey"]
        header_keys = [n for n in api_key if kinds[n].get("in") == "header"]
        login = self._usable_login(notes)
        token_login = login is not None and _find_field(
            login.response_schema(), _TOKEN_FIELDS, depth=3
        )
        if bearer and login is not None:
            self._login_auth(auth, login, notes)
            self._token_scheme(auth, "Bearer", notes)
        elif header_keys and token_login and login is not None:
            # an API key "scheme" that is really a token the log-in returns
            name = header_keys[0]
            self._login_auth(auth, login, notes)
            header = str(kinds[name].get("name") or "Authorization")
            if header.lower() == "authorization":
                self._token_scheme(auth, self._documented_prefix(kinds[name]), notes)
            else:
                auth["scheme"] = "header"
                auth["header"] = header
                notes.append(f"token from {login.label} sent in the {header} header ({name!r})")
        elif basic:
            auth["scheme"] = "basic"
        elif api_key:
            _api_key_auth(auth, api_key[0], kinds[api_key[0]], notes)
        elif not kinds:
            self._schemeless(auth, login if token_login else None, notes)
        else:
            auth["scheme"] = "none"
            if bearer:
                notes.append(
                    f"security scheme {bearer[0]!r} uses tokens but no log-in operation was "
                    "found: add auth.login and token_path, then set scheme: bearer"
                )
            elif kinds:
                names = ", ".join(sorted(kinds))
                notes.append(
                    f"security schemes not supported ({names}): requests go unauthenticated"
                )

    def _schemeless(self, auth: dict[str, Any], login: _Op | None, notes: list[str]) -> None:
        """Auth for a document that declares no security scheme, from its operations: a
        log-in returning a token -> token auth; else a sign-up with a password -> HTTP
        Basic with the user's name and password; else none."""
        if login is not None:
            self._login_auth(auth, login, notes)
            self._token_scheme(auth, self._documented_prefix({}), notes)
            notes.append(f"no security scheme declared: token auth from {login.label}")
        elif self.signup is not None:
            auth["scheme"] = "basic"
            notes.append(
                f"no security scheme declared: users sign up with a password "
                f"({self.signup.label}) and no log-in returns a token, so HTTP Basic is "
                "assumed (set auth.scheme if the API wants something else)"
            )
        else:
            auth["scheme"] = "none"

    def _login_auth(self, auth: dict[str, Any], login: _Op, notes: list[str]) -> None:
        """Fill ``login`` and ``token_path`` from the log-in operation."""
        auth["login"] = self._auth_request(login, signup=False)
        token_path = _find_field(login.response_schema(), _TOKEN_FIELDS, depth=3)
        auth["token_path"] = token_path or "token"
        if token_path is None:
            notes.append(f"no token field documented in {login.label}: check token_path")

    def _token_scheme(self, auth: dict[str, Any], found: str | None, notes: list[str]) -> None:
        """``bearer`` or ``token`` with ``prefix``: ``--auth-prefix``, else the
        prefix the document shows (``found``), else ``Bearer``."""
        prefix = self.auth_prefix or found
        if prefix is None:
            prefix = "Bearer"
            notes.append(
                "the document shows no prefix for the token in the Authorization header: "
                "Bearer assumed (set it with --auth-prefix)"
            )
        elif not self.auth_prefix:
            notes.append(f"tokens are sent as 'Authorization: {prefix} TOKEN' (as documented)")
        if prefix.lower() == "bearer":
            auth["scheme"] = "bearer"
            return
        auth["scheme"] = "token"
        if prefix != "Token":
            auth["prefix"] = prefix

    def _documented_prefix(self, scheme: Mapping[str, Any]) -> str | None:
        """The word the document puts before the token in ``Authorization`` (None: none).

        Read from the security scheme's description and examples, the ``info``
        description, and the descriptions and examples of ``Authorization`` header
        parameters: ``Authorization: Token xxx``, ``Token <jwt>``, ``prefixed with
        'JWT '``.
        """
        texts = [scheme.get("description"), scheme.get("x-example"), scheme.get("example")]
        texts.append(_map(self.doc.get("info")).get("description"))
        for op in self.ops:
            for param in op.params:
                if str(param.get("name")).lower() == "authorization":
                    schema = _map(param.get("schema"))
                    texts += [param.get("description"), param.get("example")]
                    texts += [schema.get("example"), schema.get("default")]
        return documented_prefix(" \n ".join(str(t) for t in texts if isinstance(t, str)))

    def _security_schemes(self) -> dict[str, Any]:
        defined = _map(_map(self.doc.get("components")).get("securitySchemes"))
        if not isinstance(defined, Mapping):
            return {}
        used: set[str] = set()
        for req in _seq(self.doc.get("security")):
            if isinstance(req, Mapping):
                used.update(str(k) for k in req)
        for op in self.ops:
            for req in _seq(op.spec.get("security")):
                if isinstance(req, Mapping):
                    used.update(str(k) for k in req)
        names = [n for n in defined if n in used] or list(defined)
        return {n: defined[n] for n in names if isinstance(defined[n], Mapping)}

    def _auth_request(self, op: _Op, *, signup: bool) -> dict[str, Any]:
        schema, _, _ = op.request_schema()
        request: dict[str, Any] = {"method": op.method, "path": self.prefix + op.path}
        body = _Values(self, {}, user_fields=True, login=not signup).object(
            _norm(schema), required=True, depth=0
        )
        if body is not _SKIP:
            request["body"] = body
        request["expect"] = op.expect()
        return request

    def _user_id_path(self) -> str | None:
        if self.signup is not None:
            resource = self.user_resource or "users"
            found = _created_id(self.signup.response_schema(), resource)
            if found is not None:
                return f"{found[0]}.{found[1]}" if found[0] else found[1]
            item = created_item(self.signup.response_schema(), resource)
            if item is not None and self.assumed_id(resource, item[1]):
                return f"{item[0]}.id" if item[0] else "id"
            return None
        if self.login is not None:
            return _find_field(
                self.login.response_schema(), ("user_id", "userId", "uid")
            ) or _find_field(self.login.response_schema(), ("id",), depth=2)
        return None


_PASSWORD = re.compile(r"pass(word|wd)?1?")
_PREFIX_PATTERNS = (
    re.compile(r"Authorization\W{0,3}\s*([A-Za-z][\w-]{1,30})\s+[\w<{\[$.\-]", re.I),
    re.compile(r"prefix(?:ed)?\s+(?:with|by)?\s*[\"'`]?([A-Za-z][\w-]{1,30})\b", re.I),
    re.compile(
        r"(?<![\w-])([A-Z][\w-]{1,30})\s+(?:<[^>\s]*>|\{[^}\s]*\}|\[[^\]\s]*\]|x{3,}\S*|"
        r"ey[\w-]{4,}\S*|\$\{?\w+\}?|\.\.\.|jwt\b|(?:your|my|the)[_-]\w+)"
    ),
)
_NOT_PREFIXES = frozenset((
    "header", "headers", "the", "a", "an", "must", "is", "should", "with", "field", "value",
    "as", "in", "and", "or", "to", "be", "for", "of", "this", "that", "key", "using", "your",
))  # fmt: skip


def documented_prefix(text: str) -> str | None:
    """The authorization prefix a text shows (``Token`` in ``Authorization: Token xxx``).

    Returns None when the text shows none. Words such as ``header`` or ``the`` after
    ``Authorization`` are not prefixes.
    """
    for pattern in _PREFIX_PATTERNS:
        for match in pattern.finditer(text):
            word = match.group(1)
            if word.lower() not in _NOT_PREFIXES:
                return word
    return None


def holds_password(schema: Any, depth: int = 3) -> bool:
    """Whether a request schema has a password property, itself or in a wrapper object
    (``{"user": {"email": ..., "password": ...}}``), up to ``depth`` levels down."""
    node = _norm(schema)
    props = node.get("properties") or {}
    if any(_PASSWORD.fullmatch(_snake(p)) for p in props):
        return True
    return depth > 1 and any(holds_password(sub, depth - 1) for sub in props.values())


def _is_token_scheme(scheme: dict[str, Any]) -> bool:
    kind = scheme.get("type")
    if kind == "http":
        return str(scheme.get("scheme", "")).lower() == "bearer"
    return kind in ("oauth2", "openIdConnect")


def _api_key_auth(auth: dict[str, Any], name: str, spec: dict[str, Any], notes: list[str]) -> None:
    """Fill ``auth`` for an ``apiKey`` security scheme (a placeholder key to replace)."""
    auth["scheme"] = "api_key"
    auth["header"] = str(spec.get("name") or "X-API-Key")
    auth["api_key"] = "CHANGE-ME"
    notes.append(f"security scheme {name!r} is an API key: put a real key in api.auth.api_key")
    if spec.get("in") != "header":
        notes.append(
            f"the API takes the key in the {spec.get('in')}, not a header: edit the "
            "actions (query) instead of api.auth"
        )
