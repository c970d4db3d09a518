"""Writing plugins.toml values in tests (the adapters' fixtures build their own plugins.toml)."""

from __future__ import annotations

from typing import Any


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal: booleans, numbers, lists, inline tables and strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
