"""A small declarative checker for configuration tables (scenario files).

Each section is a dict of ``Field``s. ``check_table`` turns a parsed TOML
table into plain values and, on the first problem, raises ``ConfigError``
naming the file, the key's full path and what was expected, with a
did-you-mean for typos. Nothing here knows about networks.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class ConfigError(ValueError):
    """A scenario (or other config) problem, phrased for the person who wrote it."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    item: type | None = None  # for lists: the type of each item

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "a list", dict: "a table"}
        text = " or ".join(names.get(k, k.__name__) for k in kinds)
        if self.item is not None:
            text += f" of {names.get(self.item, self.item.__name__)}s"
        if self.minimum is not None and self.maximum is not None:
            text += f" from {self.minimum} to {self.maximum}"
        elif self.minimum is not None:
            text += f" >= {self.minimum}"
        return text


def _type_ok(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_table(
    table: Mapping[str, Any],
    fields: Mapping[str, Field],
    source: str,
    where: str,
    extra: Callable[[str, Any], bool] | None = None,
) -> dict[str, Any]:
    """Validate ``table`` against ``fields``; unknown keys are errors unless ``extra`` accepts them."""
    if not isinstance(table, Mapping):
        raise ConfigError(source, where, f"must be a table, not {type(table).__name__}")
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{where}.{key}" if where else key
        field = fields.get(key)
        if field is None:
            if extra is not None and extra(key, value):
                continue
            known = sorted(fields)
            raise ConfigError(source, path, f"unknown key{suggest(key, known)} (known keys here: {', '.join(known)})")
        out[key] = check_value(value, field, source, path)
    for key, field in fields.items():
        if key not in out:
            if field.required:
                raise ConfigError(source, f"{where}.{key}" if where else key, f"is required ({field.describe()}{': ' + field.help if field.help else ''})")
            out[key] = field.default
    return out


def check_value(value: Any, field: Field, source: str, path: str) -> Any:
    if not _type_ok(value, field.kind):
        raise ConfigError(source, path, f"got {value!r}, expected {field.describe()}")
    if field.item is not None:
        for i, item in enumerate(value):
            if not _type_ok(item, field.item):
                raise ConfigError(source, f"{path}[{i}]", f"got {item!r}, expected {field.describe()}")
    if field.choices is not None and value not in field.choices:
        hint = suggest(str(value), [str(c) for c in field.choices])
        raise ConfigError(source, path, f"got {value!r}, expected {field.describe()}{hint}")
    if field.minimum is not None and value < field.minimum:
        raise ConfigError(source, path, f"got {value!r}, expected {field.describe()}")
    if field.maximum is not None and value > field.maximum:
        raise ConfigError(source, path, f"got {value!r}, expected {field.describe()}")
    if isinstance(value, int) and not isinstance(value, bool) and field.kind is float:
        value = float(value)
    return value
