"""A small declarative checker for configuration tables (scenario files).

Each section is a dict of ``Field``s. ``check_table`` turns a parsed TOML
table into plain values and, on the first problem, raises ``ConfigError``
naming the file, the key's full path and what was expected, with a
did-you-mean for typos. Nothing here knows about networks.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")


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


# ---- settings dataclasses -------------------------------------------------------------
# A settings dataclass declares each setting once: its type (the annotation), its default
# and where that default comes from (the help). The scenario's key tables are generated
# from it (``fields_of``), the scenario builds it (``build``), and a service rebuilds the
# same dataclass from its JSON config (``from_config``), so no default is written twice.

def setting(default: Any = None, help: str = "", *, minimum: float | None = None, maximum: float | None = None,
            choices: tuple[Any, ...] | None = None, required: bool = False, item: type | None = None) -> Any:
    """One setting of a settings dataclass (use as the field's default)."""
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices, "required": required, "item": item}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.copy(default), metadata={"setting": meta})
    return dataclasses.field(default=default, metadata={"setting": meta})


_SCALARS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


def _kind_of(annotation: str) -> tuple[type, type | None]:
    """A field's annotation (a string under ``from __future__ import annotations``) -> (Field kind, list item kind)."""
    a = annotation.replace(" | None", "").strip()
    if a in _SCALARS:
        return _SCALARS[a], None
    if a.startswith("tuple["):
        return list, _SCALARS.get(a[6:].split(",")[0].strip())
    if a.startswith(("Mapping[", "dict[")):
        return dict, None
    raise TypeError(f"no scenario type for the annotation {annotation!r}")


def fields_of(cls: type, skip: tuple[str, ...] = ()) -> dict[str, Field]:
    """The scenario keys of a settings dataclass: one ``Field`` per ``setting``, in declaration order."""
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None or f.name in skip:
            continue
        kind, item = _kind_of(str(f.type))
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, tuple):
            default = list(default)
        out[f.name] = Field(kind, default=default, required=meta["required"], minimum=meta["minimum"], maximum=meta["maximum"],
                            choices=meta["choices"], help=meta["help"], item=meta["item"] or item)
    return out


def build(cls: type[T], values: Mapping[str, Any]) -> T:
    """The dataclass from checked values (lists become the tuples the annotations say); unknown keys are ignored."""
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            value = values[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) and str(f.type).startswith("tuple[") else value
    return cls(**kwargs)


def from_config(cls: type[T], config: Mapping[str, Any]) -> T:
    """What a service was configured with (its JSON config), as the settings dataclass the scenario built.

    Only the plain settings are read; nested settings (a balancer's health checks) are tables of their
    own in the config, which the service rebuilds with their own class."""
    names = {f.name for f in dataclasses.fields(cls) if "setting" in f.metadata}  # type: ignore[arg-type]
    return build(cls, {k: v for k, v in config.items() if k in names})


def as_config(settings: Any) -> dict[str, Any]:
    """A settings dataclass as JSON-ready values (nested settings become tables)."""
    out = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            value = as_config(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out
