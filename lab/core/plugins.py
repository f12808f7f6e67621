"""A student's own balancing algorithm, loaded from a file and checked before anything is built.

A scenario may name ``algorithm = "my_p2c.py:PowerOfTwo"`` (a path relative
to the scenario file, then the class). The class must subclass
``lab.core.algorithms.Algorithm`` and define ``choose(self, candidates,
request, rng)``. ``check`` imports it and calls ``choose`` on a few made-up
servers, so a mistake is one clear error naming the file and the line
(a syntax error, a missing class, a wrong signature, an exception, an answer
that is not one of the candidates) instead of a balancer dying mid-run. A
starter whose TODO still raises ``NotImplementedError`` is reported as "not
implemented yet".

halab's own algorithms (``lab/core/algorithms/``) are the reference
implementations; a student's class runs in exactly the same place.
"""
from __future__ import annotations

import importlib.util
import inspect
import random
import sys
import traceback
from pathlib import Path
from types import ModuleType

from lab.core.algorithms.base import Algorithm, RequestInfo, Server


class PluginError(ValueError):
    """The student's file cannot be used; the message names the file and line."""


class NotImplementedYet(PluginError):
    """The file is a starter whose TODO has not been filled in."""


def is_reference(name: str) -> bool:
    """Does an ``algorithm`` setting name a file (``file.py:Class``) rather than one of halab's algorithms?"""
    path, sep, cls = name.rpartition(":")
    return bool(sep and path.endswith(".py") and cls)


def resolve(name: str, base: Path) -> str:
    """``file.py:Class`` with the file made absolute (relative to ``base``, the scenario's directory)."""
    path, _, cls = name.rpartition(":")
    full = Path(path) if Path(path).is_absolute() else (base / path)
    return f"{full.resolve()}:{cls}"


def _where(error: BaseException, path: Path) -> str:
    """'file:line' of the deepest frame of ``error`` inside the student's file (else just the file)."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            return f"{path}:{frame.lineno}"
    return str(path)


def _import(path: Path) -> ModuleType:
    if not path.is_file():
        raise PluginError(f"{path}: no such file (the path is relative to the scenario file)")
    name = f"halab_student_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise PluginError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - whatever the file does wrong when imported, say where
        raise PluginError(f"{_where(e, path)}: importing the file failed: {type(e).__name__}: {e}") from None
    sys.modules[name] = module
    return module


def load(reference: str) -> type[Algorithm]:
    """The class a ``file.py:Class`` reference names, checked for its shape (not yet run)."""
    file, _, cls_name = reference.rpartition(":")
    path = Path(file)
    module = _import(path)
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = [n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__]
        raise PluginError(f"{path}: no class {cls_name!r} in the file (classes there: {', '.join(found) or 'none'})")
    if not (inspect.isclass(cls) and issubclass(cls, Algorithm)):
        raise PluginError(f"{path}: {cls_name} must subclass Algorithm: write 'from lab.core.algorithms import Algorithm' "
                          f"and 'class {cls_name}(Algorithm):'")
    if cls.choose is Algorithm.choose:
        raise PluginError(f"{path}: {cls_name} has no choose(self, candidates, request, rng) method")
    params = list(inspect.signature(cls.choose).parameters)
    if len(params) != 4:
        line = inspect.getsourcelines(cls.choose)[1]
        raise PluginError(f"{path}:{line}: choose must take (self, candidates, request, rng); it takes ({', '.join(params)})")
    return cls


def sample_servers(n: int = 3) -> list[Server]:
    servers = [Server(f"s{i + 1}", f"10.0.0.{11 + i}", weight=1 + (i == 0)) for i in range(n)]
    for i, s in enumerate(servers):
        s.index = i
    return servers


def check(reference: str) -> type[Algorithm]:
    """Load the class and call it as a balancer would; raise ``PluginError`` (or ``NotImplementedYet``) saying what is wrong."""
    cls = load(reference)
    path = Path(reference.rpartition(":")[0])
    try:
        algorithm = cls()
    except Exception as e:  # noqa: BLE001
        raise PluginError(f"{_where(e, path)}: {cls.__name__}() failed: {type(e).__name__}: {e} (it is made with no arguments)") from None
    servers, rng = sample_servers(), random.Random(1)
    request = RequestInfo(client="10.0.0.101", path="/")
    for _ in range(20):
        try:
            chosen = algorithm.choose(servers, request, rng)
        except NotImplementedError as e:
            raise NotImplementedYet(f"{_where(e, path)}: not implemented yet ({e or 'fill in the TODO'})") from None
        except Exception as e:  # noqa: BLE001
            raise PluginError(f"{_where(e, path)}: choose failed: {type(e).__name__}: {e}") from None
        if not any(chosen is s for s in servers):
            line = inspect.getsourcelines(cls.choose)[1]
            raise PluginError(f"{path}:{line}: choose must return one of the candidates it was given, it returned {chosen!r}")
    return cls
