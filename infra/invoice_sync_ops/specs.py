"""Check payloads against vendors' published OpenAPI component schemas (Xero's ``xero_accounting.yaml``).

The spec lives outside the repository, in the ``shared/`` folder beside it
(``shared/specs/xero/xero_accounting.yaml``); set ``XERO_OPENAPI_SPEC`` to point elsewhere.
OpenAPI 3.0 schemas are close enough to JSON Schema draft 7 for structural checks: ``$ref`` siblings are
ignored in both, ``x-*`` extensions are ignored, and formats (``uuid``, ``double``) are not asserted.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs; comes with moto

__all__ = ["XERO_ACCOUNTING_SPEC", "load_spec", "spec_path", "xero_validator"]

XERO_ACCOUNTING_SPEC = (
    Path(__file__).resolve().parents[3] / "shared" / "specs" / "xero" / "xero_accounting.yaml"
)


def spec_path() -> Path:
    """The Xero spec in use: ``XERO_OPENAPI_SPEC`` when set, else the one in ``shared/``."""
    override = os.environ.get("XERO_OPENAPI_SPEC")
    return Path(override) if override else XERO_ACCOUNTING_SPEC


@functools.lru_cache(maxsize=4)
def load_spec(path: Path) -> dict[str, Any]:
    """The parsed spec (cached: the Xero spec is 25,000 lines of YAML)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader, C or Python
    if not isinstance(spec, dict) or "components" not in spec:
        raise ValueError(f"{path} is not an OpenAPI document with components")
    return spec


def xero_validator(schema_name: str, path: Path | None = None) -> Callable[[Any], list[str]]:
    """A function returning the messages (``path: message``) for an instance of ``components.schemas.<name>``.

    An empty list means the instance fits the schema. Raises FileNotFoundError when the spec is absent
    and KeyError for an unknown schema name.
    """
    spec = load_spec(path or spec_path())
    if schema_name not in spec["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the Xero accounting spec")
    # References are '#/components/schemas/X': keep them resolvable by rooting the schema at the spec.
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    validator = Draft7Validator(root)

    def validate(instance: Any) -> list[str]:
        errors = sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path))
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
            for error in errors
        ]

    return validate
