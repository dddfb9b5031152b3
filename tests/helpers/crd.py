"""Check a manifest against a CustomResourceDefinition's OpenAPI v3 schema, offline (no cluster, no kubectl).

Every key of the manifest must be a property the schema declares (or fall under ``additionalProperties`` /
``x-kubernetes-preserve-unknown-fields``), and scalars must have the declared type; ``rayStartParams`` values, for
instance, must be strings. The vendored schema (tests/fixtures/kuberay/crd_subset.json) keeps, for every object the
manifests reach, the names of all its properties, and the full schema only below the ones they use: a property
the manifests start to use later is marked ``x-pruned`` and reaching it asks for a re-vendor.
"""

from __future__ import annotations

from typing import Any

PRUNED = "x-pruned"
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def problems(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``value`` does not fit ``schema``: one ``path: what`` per problem (empty when it fits)."""
    if schema.get(PRUNED):
        return [f"{path}: not in the vendored schema subset; re-run tests/fixtures/kuberay/vendor_crd.py"]
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an int or a string, got {value!r}"]
    kind = schema.get("type")
    if kind in TYPES and (not isinstance(value, TYPES[kind]) or (kind != "boolean" and isinstance(value, bool))):
        return [f"{path}: expected {kind}, got {type(value).__name__} {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]
    out: list[str] = []
    if isinstance(value, dict):
        if "properties" not in schema and "additionalProperties" not in schema:
            return []  # a bare `type: object` (metadata: ObjectMeta, checked by the API server itself)
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key in properties:
                out += problems(item, properties[key], where)
            elif isinstance(extra, dict):
                out += problems(item, extra, where)
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                out.append(f"{where}: unknown field (known: {', '.join(sorted(properties)) or 'none'})")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            out += problems(item, schema["items"], f"{path}[{i}]")
    return out


def prune(schema: dict[str, Any], used: Any) -> dict[str, Any]:
    """The part of ``schema`` that checking ``used`` reads (see the module docstring); descriptions dropped."""
    keep = {k: v for k, v in schema.items() if k not in ("properties", "items", "additionalProperties", "description")}
    if isinstance(used, dict):
        properties = schema.get("properties", {})
        if properties:
            keep["properties"] = {
                name: prune(sub, used[name]) if name in used else {PRUNED: True} for name, sub in properties.items()
            }
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            unknown = {k: v for k, v in used.items() if k not in properties}
            keep["additionalProperties"] = prune(extra, _merge(list(unknown.values()))) if unknown else {PRUNED: True}
        elif extra is not None:
            keep["additionalProperties"] = extra
    elif isinstance(used, list) and isinstance(schema.get("items"), dict):
        keep["items"] = prune(schema["items"], _merge(used))
    return keep


def _merge(values: list[Any]) -> Any:
    """Several manifest values checked against one schema: their keys merged (dicts) or concatenated (lists)."""
    if values and all(isinstance(v, dict) for v in values):
        merged: dict[str, Any] = {}
        for value in values:
            for key, item in value.items():
                merged[key] = _merge([merged[key], item]) if key in merged else item
        return merged
    if values and all(isinstance(v, list) for v in values):
        return [item for value in values for item in value]
    return values[0] if values else None
