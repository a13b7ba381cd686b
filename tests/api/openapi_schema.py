"""A minimal OpenAPI 3.0 -> JSON Schema loader for the API tests (resolves $ref, translates
``nullable``, drops OpenAPI-only keywords). Kept here so tests/api depends on nothing else."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parents[2] / "vendor" / "backmarket" / "openapi.yml"
_DROP = {"example", "examples", "discriminator", "xml", "externalDocs", "deprecated", "title",
         "description"}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    import yaml

    with SPEC_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _resolve(ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported: {ref}")
    node: Any = spec()
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def to_jsonschema(node: Any, depth: int = 0) -> Any:
    """The JSON Schema equivalent of an OpenAPI 3.0 schema object."""
    if depth > 40:
        raise RecursionError("schema nests too deep (recursive $ref?)")
    if isinstance(node, list):
        return [to_jsonschema(item, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_jsonschema(_resolve(node["$ref"]), depth + 1)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key.startswith("x-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_jsonschema(sub, depth + 1) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_jsonschema(value, depth + 1)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_jsonschema(sub, depth + 1) for sub in value]
        else:
            out[key] = value
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def operation(path: str, method: str) -> dict[str, Any]:
    return spec()["paths"][path][method.lower()]


def request_schema(path: str, method: str) -> Any:
    body = operation(path, method)["requestBody"]
    return to_jsonschema(body["content"]["application/json"]["schema"])


def response_schema(path: str, method: str, status: int | str) -> Any:
    answer = operation(path, method)["responses"][str(status)]
    if "$ref" in answer:
        answer = _resolve(answer["$ref"])
    return to_jsonschema(answer["content"]["application/json"]["schema"])


def component(name: str) -> Any:
    return to_jsonschema({"$ref": f"#/components/schemas/{name}"})


def validate(instance: Any, schema: Any) -> None:
    """Raise jsonschema.ValidationError when ``instance`` does not match ``schema``."""
    import jsonschema

    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(instance)
