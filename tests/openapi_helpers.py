"""Validate bodies against Back Market's ``openapi.yml`` (OpenAPI 3.0.3) with jsonschema.

The document is loaded once, translated to JSON Schema (draft 4, whose ``exclusiveMinimum``
and ``$ref`` semantics match OpenAPI 3.0) and registered so that ``$ref`` resolves within it:

- ``nullable: true`` becomes ``anyOf: [<schema>, {"type": "null"}]`` (this also covers the
  spec's ``nullable`` beside ``anyOf``/``allOf``/``enum``);
- OpenAPI-only keywords (``example``, ``discriminator``, ``xml``, ``x-*``...) are ignored by
  jsonschema; formats are checked (``uuid``, ``date-time``, ...).

API:
- ``validate_response(path_template, method, status, body_json)`` — the response schema of that
  operation and status (a ``$ref`` to ``components/responses`` is followed). A status the
  operation does not document raises ``LookupError``; a documented status without a JSON body
  schema validates nothing and returns False (True when a schema was checked).
- ``validate_request_body(path_template, method, body_json)`` — the operation's JSON request body.
- ``validate_schema(name, instance)`` — against ``components/schemas/<name>``.
- ``match_path(path)`` — the path template a concrete path belongs to (``/ws/listings/{listingId}``).
- ``spec()`` — the raw document; ``OPENAPI_PATH`` — where it is.
Failures raise ``jsonschema.ValidationError`` (message names the failing part).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

#: Back Market's document, vendored unedited (vendor/backmarket/README.md says from where).
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "vendor" / "backmarket" / "openapi.yml"
_URI = "urn:bmctl:openapi"
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    """The OpenAPI document as loaded from YAML (do not mutate)."""
    with OPENAPI_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _translate(node: Any) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema, recursively (whole document at once)."""
    if isinstance(node, list):
        return [_translate(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _translate(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return _translate(spec())


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resource = Resource.from_contents(_document(), default_specification=DRAFT4)
    return Registry().with_resource(_URI, resource)


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (for response and request-body objects, not schemas)."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise LookupError(f"non-local $ref {ref}")
        target: Any = _document()
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@lru_cache(maxsize=None)
def _validator(pointer: str) -> jsonschema.Draft4Validator:
    schema = {"$ref": f"{_URI}#{pointer}"}
    return jsonschema.Draft4Validator(schema, registry=_registry(),
                                      format_checker=jsonschema.FormatChecker())


def _check(pointer: str, instance: Any) -> None:
    validator = _validator(pointer)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


def _operation(path_template: str, method: str) -> dict[str, Any]:
    paths = _document()["paths"]
    if path_template not in paths:
        raise LookupError(f"{path_template} is not a path of the spec")
    item = paths[path_template]
    op = item.get(method.lower())
    if op is None or method.lower() not in _METHODS:
        raise LookupError(f"{method.upper()} {path_template} is not in the spec")
    return op


def _json_schema_pointer(base: tuple[str, ...], content: dict[str, Any] | None) -> str | None:
    if not content:
        return None
    for media in ("application/json", *content):
        if media in content and "schema" in content[media]:
            return _pointer(*base, "content", media, "schema")
    return None


def validate_response(path_template: str, method: str, status: int, body_json: Any) -> bool:
    """Validate a decoded response body; True when a schema was checked (see module doc)."""
    op = _operation(path_template, method)
    responses = op.get("responses", {})
    key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
    if key not in responses:
        key = "default"
    if key not in responses:
        raise LookupError(f"{method.upper()} {path_template} documents no {status} answer "
                          f"(documented: {', '.join(responses)})")
    response = responses[key]
    if "$ref" in response:  # a components/responses object: validate at its own location
        ref = response["$ref"]
        parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/"))
        response = _resolve(response)
        base = parts
    else:
        base = ("paths", path_template, method.lower(), "responses", key)
    pointer = _json_schema_pointer(base, response.get("content"))
    if pointer is None:
        return False
    _check(pointer, body_json)
    return True


def validate_request_body(path_template: str, method: str, body_json: Any) -> None:
    """Validate a decoded JSON request body against the operation's requestBody schema."""
    op = _operation(path_template, method)
    body = op.get("requestBody")
    if body is None:
        raise LookupError(f"{method.upper()} {path_template} takes no request body")
    base: tuple[str, ...] = ("paths", path_template, method.lower(), "requestBody")
    if "$ref" in body:
        base = tuple(body["$ref"][2:].split("/"))
        body = _resolve(body)
    pointer = _json_schema_pointer(base, body.get("content"))
    if pointer is None:
        raise LookupError(f"{method.upper()} {path_template} has no JSON request body schema")
    _check(pointer, body_json)


def validate_schema(name: str, instance: Any) -> None:
    """Validate against ``#/components/schemas/<name>``."""
    if name not in _document()["components"]["schemas"]:
        raise LookupError(f"no schema {name!r} in the spec")
    _check(_pointer("components", "schemas", name), instance)


@lru_cache(maxsize=1)
def _templates() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in _document()["paths"]:
        regex = re.escape(template)
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", regex)
        out.append((re.compile(f"^{regex}/?$"), template))
    # Literal paths first: /ws/listings/detail must not match /ws/listings/{listingId}.
    out.sort(key=lambda pair: (pair[1].count("{"), -len(pair[1])))
    return out


def match_path(path: str) -> str:
    """The spec's path template for a concrete path; LookupError when none matches."""
    for regex, template in _templates():
        if regex.match(path):
            return template
    raise LookupError(f"no path of the spec matches {path}")
