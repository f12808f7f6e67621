"""A student's own class, loaded from a file and checked before anything is built.

Three seams take one (``Interface`` below, one per seam): a balancing
algorithm (``[balancer] algorithm = "my_p2c.py:PowerOfTwo"``, subclassing
``Algorithm``, exercise 2), a health counter's rule (``[balancer.health]
rule = "my_counter.py:MyCounter"``, subclassing ``HealthRule``, exercise 1)
and a VRRP backup's timer (``[vrrp] backup_timer = "my_timer.py:MyTimer"``,
subclassing ``BackupTimer``, exercise 3). The path is relative to the
scenario file. ``check`` imports the class and calls its one method as the
service would, on made-up input, so a mistake is one clear error naming
the file and the line (a syntax error, a missing class, a wrong signature,
an exception, an answer out of range) instead of a service dying mid-run. A
starter whose TODO still raises ``NotImplementedError`` is reported as "not
implemented yet".

halab's own classes (``lab/core/algorithms/``, ``HaproxyRule``,
``RfcTimer``) are the reference implementations; a student's class runs in
exactly the same place.
"""
from __future__ import annotations

import importlib.util
import inspect
import random
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from lab.core.algorithms.base import Algorithm, RequestInfo, Server
from lab.core.health import DOWN, FAIL, PASS, UP, HealthRule, HealthSettings
from lab.core.vrrp import BackupTimer


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


@dataclass(frozen=True)
class Interface:
    """One seam a student's class can fill: the base class, the one method to write, how it is tried."""

    setting: str  # where a scenario names it, for the messages
    base: type
    method: str
    params: tuple[str, ...]  # the method's parameters, self first
    importing: str  # the import line the student's file needs
    try_it: Callable[[Any, Path], None]  # call a fresh instance as the service would; raise PluginError on a wrong answer


def load(reference: str, interface: Interface | None = None) -> type:
    """The class a ``file.py:Class`` reference names, checked for its shape (not yet run)."""
    interface = interface or ALGORITHM
    file, _, cls_name = reference.rpartition(":")
    path = Path(file)
    module = _import(path)
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = [n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__]
        raise PluginError(f"{path}: no class {cls_name!r} in the file (classes there: {', '.join(found) or 'none'})")
    base, method, params = interface.base.__name__, interface.method, ", ".join(interface.params)
    if not (inspect.isclass(cls) and issubclass(cls, interface.base)):
        raise PluginError(f"{path}: {cls_name} must subclass {base}: write '{interface.importing}' and 'class {cls_name}({base}):'")
    if getattr(cls, method) is getattr(interface.base, method):
        raise PluginError(f"{path}: {cls_name} has no {method}({params}) method")
    found = list(inspect.signature(getattr(cls, method)).parameters)
    if len(found) != len(interface.params):
        line = inspect.getsourcelines(getattr(cls, method))[1]
        raise PluginError(f"{path}:{line}: {method} must take ({params}); it takes ({', '.join(found)})")
    return cls


def sample_servers(n: int = 3) -> list[Server]:
    servers = [Server(f"s{i + 1}", f"10.0.0.{11 + i}", weight=1 + (i == 0)) for i in range(n)]
    for i, s in enumerate(servers):
        s.index = i
    return servers


def check(reference: str, interface: Interface | None = None) -> type:
    """Load the class and call it as its service would; raise ``PluginError`` (or ``NotImplementedYet``) saying what is wrong."""
    interface = interface or ALGORITHM
    cls = load(reference, interface)
    path = Path(reference.rpartition(":")[0])
    try:
        instance = cls()
    except Exception as e:  # noqa: BLE001
        raise PluginError(f"{_where(e, path)}: {cls.__name__}() failed: {type(e).__name__}: {e} (it is made with no arguments)") from None
    try:
        interface.try_it(instance, path)
    except PluginError:
        raise
    except NotImplementedError as e:
        raise NotImplementedYet(f"{_where(e, path)}: not implemented yet ({e or 'fill in the TODO'})") from None
    except Exception as e:  # noqa: BLE001
        raise PluginError(f"{_where(e, path)}: {interface.method} failed: {type(e).__name__}: {e}") from None
    return cls


def _line(instance: Any, method: str) -> int:
    return inspect.getsourcelines(getattr(type(instance), method))[1]


def _try_algorithm(algorithm: Algorithm, path: Path) -> None:
    servers, rng = sample_servers(), random.Random(1)
    request = RequestInfo(client="10.0.0.101", path="/")
    for _ in range(20):
        chosen = algorithm.choose(servers, request, rng)
        if not any(chosen is s for s in servers):
            raise PluginError(f"{path}:{_line(algorithm, 'choose')}: choose must return one of the candidates it was given, "
                              f"it returned {chosen!r}")


def _try_health_rule(rule: HealthRule, path: Path) -> None:
    """Every state, counter value and result a counter can meet (rise 2, fall 3): the answer must be a state and a counter in range."""
    settings = HealthSettings(rise=2, fall=3)
    for state in (UP, DOWN):
        for health in range(settings.top + 1):
            for result in (PASS, FAIL):
                answer = rule.step(state, health, result, settings)
                if not (isinstance(answer, tuple) and len(answer) == 2 and answer[0] in (UP, DOWN)
                        and isinstance(answer[1], int) and 0 <= answer[1] <= settings.top):
                    raise PluginError(f"{path}:{_line(rule, 'step')}: step({state!r}, {health}, {result!r}, rise 2 fall 3) must return "
                                      f"(UP or DOWN, a counter from 0 to {settings.top}); it returned {answer!r}")


def _try_backup_timer(timer: BackupTimer, path: Path) -> None:
    """Adverts of every kind a BACKUP hears: the answer must be a time not before now, or None."""
    now = 100.0
    for heard in (0, 50, 100, 150, 255):
        for preempt in (True, False):
            answer = timer.after_advert(now, heard, 100, preempt, 1.0)
            if answer is not None and (isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer < now):
                raise PluginError(f"{path}:{_line(timer, 'after_advert')}: after_advert(now={now}, heard={heard}, mine=100, "
                                  f"preempt={preempt}, interval=1.0) must return a time >= now (when to take over) or None "
                                  f"(keep the timer); it returned {answer!r}")


ALGORITHM = Interface("balancer.algorithm", Algorithm, "choose", ("self", "candidates", "request", "rng"),
                      "from lab.core.algorithms import Algorithm", _try_algorithm)
HEALTH_RULE = Interface("balancer.health.rule", HealthRule, "step", ("self", "state", "health", "result", "settings"),
                        "from lab.core.health import HealthRule", _try_health_rule)
BACKUP_TIMER = Interface("vrrp.backup_timer", BackupTimer, "after_advert", ("self", "now", "heard", "mine", "preempt", "interval"),
                         "from lab.core.vrrp import BackupTimer", _try_backup_timer)
SEAMS = {"algorithm": ALGORITHM, "health_rule": HEALTH_RULE, "backup_timer": BACKUP_TIMER}  # by the name an instructor's pack uses
