"""Small OpenAPI / Swagger documents shaped like the real third-party APIs of issue #12.

* :func:`conduit` -- an OpenAPI 3.0 document in the style of the RealWorld "Conduit"
  API: token auth through an ``apiKey`` scheme named ``Authorization`` whose
  description shows ``Token xxxxxx.yyyyyyy.zzzzzz``, sign-up and log-in bodies
  wrapped in ``{"user": {...}}``, articles addressed by ``{slug}``, profiles by
  ``{username}``, comments under their article.
* :func:`kinto` -- a Swagger 2.0 document in the style of Kinto's: no security
  definitions (HTTP Basic through its accounts plugin), ``{"data": ...}`` envelopes of
  open objects without a declared id, accounts > buckets > collections > records with
  ``DELETE`` on every collection, and operational endpoints (``__heartbeat__``,
  ``__version__``, ``__api__``, the root, ``/permissions``, ``__flush__``, ``/batch``).

Each is a function returning a fresh document, so a test may change its copy.
"""

from __future__ import annotations

from typing import Any


def _json(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    return {code: {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


_S = {"type": "string"}
_PROFILE = _obj(username=_S, bio=_S, image=_S, following={"type": "boolean"})
_ARTICLE = _obj(
    slug=_S,
    title=_S,
    description=_S,
    body=_S,
    tagList={"type": "array", "items": _S},
    favorited={"type": "boolean"},
    favoritesCount={"type": "integer"},
    author=_PROFILE,
)
_COMMENT = _obj(id={"type": "integer"}, body=_S, author=_PROFILE)
_USER = _obj(email=_S, token=_S, username=_S, bio=_S, image=_S)
_SLUG = {"name": "slug", "in": "path", "required": True, "schema": _S}
_USERNAME = {"name": "username", "in": "path", "required": True, "schema": _S}
_TOKEN_DOC = (
    "For accessing the protected API resources, you must have received a valid JWT token "
    "after registering or logging in. This JWT token must then be used for all protected "
    "resources by passing it in via the 'Authorization' header.\n\nA JWT token is generated "
    "by the API by either registering via /users or logging in via /users/login.\n\nThe "
    "following format must be in the 'Authorization' header :\n\n"
    "    Token xxxxxx.yyyyyyy.zzzzzz\n    \n"
)


def conduit() -> dict[str, Any]:
    """A Conduit-style OpenAPI 3.0 document (see the module docstring)."""
    article_in = _obj(["article"], article=_obj(["title", "description", "body"], **{
        "title": _S, "description": _S, "body": _S, "tagList": {"type": "array", "items": _S},
    }))  # fmt: skip
    one_article = _obj(["article"], article=_ARTICLE)
    profile = _obj(["profile"], profile=_PROFILE)
    return {
        "openapi": "3.0.1",
        "info": {"title": "Conduit API", "version": "1.0.0"},
        "servers": [{"url": "/api"}],
        "components": {
            "securitySchemes": {
                "Token": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": _TOKEN_DOC,
                }
            }
        },
        "paths": {
            "/users/login": {
                "post": {
                    "operationId": "Login",
                    "requestBody": _body(
                        _obj(["user"], user=_obj(["email", "password"], email=_S, password=_S))
                    ),
                    "responses": _json(_obj(["user"], user=_USER)),
                }
            },
            "/users": {
                "post": {
                    "operationId": "CreateUser",
                    "requestBody": _body(
                        _obj(
                            ["user"],
                            user=_obj(
                                ["username", "email", "password"],
                                username=_S,
                                email=_S,
                                password=_S,
                            ),
                        )
                    ),
                    "responses": _json(_obj(["user"], user=_USER), "201"),
                }
            },
            "/user": {
                "get": {
                    "operationId": "GetCurrentUser",
                    "security": [{"Token": []}],
                    "responses": _json(_obj(["user"], user=_USER)),
                },
            },
            "/profiles/{username}": {
                "get": {
                    "operationId": "GetProfileByUsername",
                    "parameters": [_USERNAME],
                    "responses": _json(profile),
                }
            },
            "/profiles/{username}/follow": {
                "post": {
                    "operationId": "FollowUserByUsername",
                    "security": [{"Token": []}],
                    "parameters": [_USERNAME],
                    "responses": _json(profile),
                },
                "delete": {
                    "operationId": "UnfollowUserByUsername",
                    "security": [{"Token": []}],
                    "parameters": [_USERNAME],
                    "responses": _json(profile),
                },
            },
            "/articles": {
                "get": {
                    "operationId": "GetArticles",
                    "responses": _json(
                        _obj(
                            ["articles", "articlesCount"],
                            articles={"type": "array", "items": _ARTICLE},
                            articlesCount={"type": "integer"},
                        )
                    ),
                },
                "post": {
                    "operationId": "CreateArticle",
                    "security": [{"Token": []}],
                    "requestBody": _body(article_in),
                    "responses": _json(one_article, "201"),
                },
            },
            "/articles/{slug}": {
                "get": {
                    "operationId": "GetArticle",
                    "parameters": [_SLUG],
                    "responses": _json(one_article),
                },
                "put": {
                    "operationId": "UpdateArticle",
                    "security": [{"Token": []}],
                    "parameters": [_SLUG],
                    "requestBody": _body(article_in),
                    "responses": _json(one_article),
                },
                "delete": {
                    "operationId": "DeleteArticle",
                    "security": [{"Token": []}],
                    "parameters": [_SLUG],
                    "responses": {"200": {"description": "ok"}},
                },
            },
            "/articles/{slug}/comments": {
                "get": {
                    "operationId": "GetArticleComments",
                    "parameters": [_SLUG],
                    "responses": _json(
                        _obj(["comments"], comments={"type": "array", "items": _COMMENT})
                    ),
                },
                "post": {
                    "operationId": "CreateArticleComment",
                    "security": [{"Token": []}],
                    "parameters": [_SLUG],
                    "requestBody": _body(_obj(["comment"], comment=_obj(["body"], body=_S))),
                    "responses": _json(_obj(["comment"], comment=_COMMENT)),
                },
            },
            "/articles/{slug}/comments/{id}": {
                "delete": {
                    "operationId": "DeleteArticleComment",
                    "security": [{"Token": []}],
                    "parameters": [
                        _SLUG,
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        },
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/articles/{slug}/favorite": {
                "post": {
                    "operationId": "CreateArticleFavorite",
                    "security": [{"Token": []}],
                    "parameters": [_SLUG],
                    "responses": _json(one_article),
                },
                "delete": {
                    "operationId": "DeleteArticleFavorite",
                    "security": [{"Token": []}],
                    "parameters": [_SLUG],
                    "responses": _json(one_article),
                },
            },
            "/tags": {
                "get": {
                    "operationId": "GetTags",
                    "responses": _json(_obj(["tags"], tags={"type": "array", "items": _S})),
                }
            },
        },
    }


def _sw_ok(schema: dict[str, Any] | None = None, code: str = "200") -> dict[str, Any]:
    out: dict[str, Any] = {"description": "ok"}
    if schema is not None:
        out["schema"] = schema
    return {code: out}


def _sw_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "type": "string"}


# Kinto's objects: open (additionalProperties), no declared id; permissions beside data.
_OPEN = {"type": "object", "title": "Data", "additionalProperties": {}}
_PERMISSIONS = {"type": "object", "properties": {
    "read": {"type": "array", "items": {"type": "string"}},
    "write": {"type": "array", "items": {"type": "string"}},
}}  # fmt: skip
_PAYLOAD = {"type": "object", "properties": {"data": _OPEN, "permissions": _PERMISSIONS}}


def _sw_body(schema: dict[str, Any], required: bool = False) -> list[dict[str, Any]]:
    return [{"name": "ObjectSchema", "in": "body", "required": required, "schema": schema}]


def _sw_resource(tag: str, params: list[str], item_param: str) -> dict[str, dict[str, Any]]:
    """A Kinto-style plural and object endpoint pair (``/.../R`` and ``/.../R/{id}``)."""
    plural = {"type": "object", "properties": {"data": {"type": "array", "items": _OPEN}}}
    single = {"type": "object", "properties": {"data": _OPEN, "permissions": _PERMISSIONS}}
    path_params = [_sw_param(p) for p in params]
    item_params = [*path_params, _sw_param(item_param)]
    return {
        "plural": {
            "get": {"operationId": f"get_{tag}s", "parameters": path_params,
                    "responses": _sw_ok(plural)},
            "post": {"operationId": f"create_{tag}",
                     "parameters": [*path_params, *_sw_body(_PAYLOAD, required=True)],
                     "responses": {**_sw_ok(single), **_sw_ok(single, "201")}},
            "delete": {"operationId": f"delete_{tag}s", "parameters": path_params,
                       "responses": _sw_ok(plural)},
        },
        "object": {
            "get": {"operationId": f"get_{tag}", "parameters": item_params,
                    "responses": _sw_ok(single)},
            "put": {"operationId": f"update_{tag}",
                    "parameters": [*item_params, *_sw_body(_PAYLOAD)],
                    "responses": _sw_ok(single)},
            "patch": {"operationId": f"patch_{tag}",
                      "parameters": [*item_params, *_sw_body(_PAYLOAD)],
                      "responses": _sw_ok(single)},
            "delete": {"operationId": f"delete_{tag}", "parameters": item_params,
                       "responses": _sw_ok(single)},
        },
    }  # fmt: skip


def kinto() -> dict[str, Any]:
    """A Kinto-style Swagger 2.0 document (see the module docstring), shaped like the one
    Kinto 26 serves at ``/v1/__api__``: no security definitions (Basic auth is implied by
    the accounts plugin), open objects that declare no id, ``{"data": ...}`` envelopes."""
    accounts = _sw_resource("account", [], "id")
    account_in = {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "object", "required": ["password"], "additionalProperties": {},
                 "properties": {"password": {"type": "string"}}},
        "permissions": _PERMISSIONS,
    }}  # fmt: skip
    accounts["plural"]["post"]["parameters"] = _sw_body(account_in, required=True)
    buckets = _sw_resource("bucket", [], "id")
    collections = _sw_resource("collection", ["bucket_id"], "id")
    records = _sw_resource("record", ["bucket_id", "collection_id"], "id")
    info = {"type": "object", "properties": {"project_version": {"type": "string"}}}
    return {
        "swagger": "2.0",
        "info": {"title": "kinto", "version": "1.23"},
        "host": "127.0.0.1:8888",
        "basePath": "/v1",
        "schemes": ["http"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {},
        "paths": {
            "/accounts": accounts["plural"],
            "/accounts/{id}": accounts["object"],
            "/batch": {"post": {"operationId": "batch", "responses": _sw_ok(info)}},
            "/__heartbeat__": {"get": {"operationId": "__heartbeat__", "responses": _sw_ok()}},
            "/__lbheartbeat__": {"get": {"operationId": "__lbheartbeat__", "responses": _sw_ok()}},
            "/": {"get": {"operationId": "server_info", "responses": _sw_ok(info)}},
            "/__api__": {"get": {"operationId": "get_openapi_spec", "responses": _sw_ok()}},
            "/__version__": {"get": {"operationId": "__version__", "responses": _sw_ok(info)}},
            "/__user_data__/{principal}": {
                "delete": {
                    "operationId": "delete_user-data",
                    "parameters": [_sw_param("principal")],
                    "responses": _sw_ok(info),
                }
            },
            "/contribute.json": {"get": {"operationId": "contribute", "responses": _sw_ok()}},
            "/__flush__": {"post": {"operationId": "flush", "responses": _sw_ok(None, "202")}},
            "/permissions": {"get": {"operationId": "get_permissions", "responses": _sw_ok(info)}},
            "/buckets": buckets["plural"],
            "/buckets/{id}": buckets["object"],
            "/buckets/{bucket_id}/collections": collections["plural"],
            "/buckets/{bucket_id}/collections/{id}": collections["object"],
            "/buckets/{bucket_id}/collections/{collection_id}/records": records["plural"],
            "/buckets/{bucket_id}/collections/{collection_id}/records/{id}": records["object"],
        },
    }
