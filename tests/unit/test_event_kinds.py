"""Every event kind is declared once (lab.event_kinds); the code that writes and reads events keeps to it."""
import ast
from pathlib import Path

import pytest

from lab.event_kinds import KINDS
from lab.events import check

LAB = Path(__file__).resolve().parents[2] / "lab"
# Emitters whose kind is computed at run time, and where their kinds come from instead
DYNAMIC = {"lab/net/lab.py": "Lab.event passes its caller's kind on",
           "lab/services/realbalancer.py": "translated HAProxy/nginx lines: checked below",
           "lab/services/keepalived.py": "translated keepalived lines: checked below",
           "lab/services/squid.py": "translated Squid access-log lines: checked below",
           "lab/services/varnish.py": "translated varnishncsa and varnishlog lines: checked below"}
READERS = ("analysis", "live.py", "labcli.py", "chaos.py", "bench.py", "hostile.py", "runner.py")


def _constants(node):
    """The string constants an expression can be: "a", "a" if x else "b", ("a", "b")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _constants(node.body) + _constants(node.orelse)
    if isinstance(node, (ast.Tuple, ast.Set, ast.List)):
        return [v for elt in node.elts for v in _constants(elt)]
    return None


def emits():
    """(file, line, kind, keyword names, has **) for every .emit(...) and .event(...) call in lab/."""
    out, dynamic = [], set()
    for path in sorted(LAB.rglob("*.py")):
        rel = str(path.relative_to(LAB.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("emit", "event") and node.args):
                continue
            kinds = _constants(node.args[0])
            if kinds is None:
                dynamic.add(rel)
                continue
            names = {k.arg for k in node.keywords if k.arg}
            for kind in kinds:
                out.append((rel, node.lineno, kind, names, any(k.arg is None for k in node.keywords)))
    return out, dynamic


def test_every_emit_names_a_declared_kind_with_declared_fields():
    found, dynamic = emits()
    assert len(found) > 40
    assert dynamic == set(DYNAMIC), "a new emitter with a computed kind: declare where its kinds come from"
    for rel, line, kind, names, spread in found:
        assert kind in KINDS, f"{rel}:{line}: {kind!r} is not declared in lab/event_kinds.py"
        declared = KINDS[kind]
        unknown = names - set(declared.fields) - {"t"}
        assert not unknown, f"{rel}:{line}: {kind} has undeclared fields {sorted(unknown)}"
        if not spread:
            missing = declared.required - names
            # Lab.event and the fault injector add the rest; EventLog adds t, node, service
            assert not missing or rel == "lab/runner.py", f"{rel}:{line}: {kind} lacks {sorted(missing)}"


def _translated():
    from lab.services import keepalived, realbalancer, squid, varnish

    names = {"10.0.0.11:80": "o1"}
    syslog = "<129>1 2026-11-26T13:07:27.644791+00:00 - haproxy 1756 - - "
    lines = [("haproxy", syslog + "Server origins/o1 is DOWN, reason: Layer4 timeout, check duration: 401ms. 2 active"),
             ("haproxy", syslog + "Health check for server origins/o1 failed, reason: Layer4 timeout, check duration: 301ms, status: 2/3 UP."),
             ("haproxy", syslog + "ROUTED 1700000000.123 0 5 1 -1 c1-5 o2 200"),
             ("haproxy", syslog + "ROUTED 1700000000.123 0 0 0 0 c1-7 <NOSRV> 503"),
             ("nginx", "ROUTED 1700000001.500 0.500 c1-6 10.0.0.11:80 504"),
             ("nginx", '2026/11/26 13:07:27 [warn] 7#7: *5 upstream server temporarily disabled while connecting to upstream, '
                       'client: 10.0.0.101, server: , request: "GET / HTTP/1.1", upstream: "http://10.0.0.11:80/", host: "10.0.0.2"')]
    out = [realbalancer.parse_line(impl, line, names) for impl, line in lines]
    out += [realbalancer.cache_line("ROUTED 1700000000.500 0.000 c1-7 - 200 HIT")]
    out += [keepalived.parse_line("Keepalived_vrrp[9]: (VI_51) Entering MASTER STATE"),
            keepalived.parse_line("Keepalived_vrrp[9]: (VI_51) Changing effective priority from 150 to 90"),
            squid.parse_line("HALAB 10.1.0.101 TCP_DENIED 403 GET http://gw1/x - 0 180 3904 c1-7"),
            squid.parse_line("HALAB 10.1.0.101 TCP_TUNNEL 200 CONNECT gw1:443 alice 1520 517 4096 -")]
    hit = squid.parse_line("HALAB 10.1.0.101 TCP_MEM_HIT 200 GET http://gw1/ - 0 180 3904 c1-9")
    out += [("cache_result", squid.cache_result(hit[1]))]
    out += varnish.parse_ncsa("ROUTED 1700000000.5 0.003 c1-8 o1 200 MISS") + varnish.parse_ncsa("ROUTED 1700000002 0.5 c1-9 - 503 -")
    out += varnish.parse_health("0 Backend_health - boot.o1 Went sick ------- 1 2 4 0.0 0.0 \"Open error 111 (Connection refused)\"")
    return [x for x in out if x is not None and x[0]]


def test_translated_daemon_lines_are_declared_events():
    translated = _translated()
    assert {k for k, _ in translated} >= {"health_changed", "health_checked", "request_routed", "request_failed",
                                          "vrrp_state_changed", "priority_changed"}
    for kind, fields in translated:
        event = {"t": 1.0, "node": "lb1", "service": "balancer", "kind": kind, **fields}
        if kind == "vrrp_state_changed":
            event.update(before="BACKUP", vip="10.0.0.1")  # the wrapper adds what keepalived does not say
        assert check(event) == [], (kind, fields)


def test_every_declared_kind_is_emitted_somewhere():
    found, _ = emits()
    emitted = {kind for _, _, kind, _, _ in found} | {k for k, _ in _translated()}
    assert set(KINDS) - emitted == set(), "declared but never written"


def read_kinds():
    """Kinds the report, the live view and the CLI compare e["kind"] with."""
    kinds = {}
    for path in [p for name in READERS for p in ((LAB / name).rglob("*.py") if (LAB / name).is_dir() else [LAB / name])]:
        tree = ast.parse(path.read_text())
        named = {t.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if not any(isinstance(s, ast.Subscript) and isinstance(s.slice, ast.Constant) and s.slice.value == "kind"
                       or isinstance(s, ast.Name) and s.id == "kind" for s in sides):
                continue
            for side in sides:
                side = named.get(side.id, side) if isinstance(side, ast.Name) else side
                for kind in _constants(side) or []:
                    kinds.setdefault(kind, f"{path.relative_to(LAB.parent)}:{node.lineno}")
    return kinds


def test_every_kind_the_report_and_live_view_read_is_declared():
    read = read_kinds()
    assert len(read) > 20
    for kind, where in read.items():
        assert kind in KINDS, f"{where} reads {kind!r}, which nothing declares (a typo is a silent zero in the report)"


@pytest.mark.parametrize("event, problem", [
    ({"t": 1, "node": "c1", "service": "loadgen", "kind": "request_finish"}, "undeclared kind"),
    ({"t": 1, "node": "c1", "service": "loadgen", "kind": "load_finished", "sent": 1, "ok": 1}, "missing failed"),
    ({"t": 1, "node": "c1", "service": "loadgen", "kind": "load_finished", "sent": 1, "ok": True, "failed": 0}, "ok: True is not int"),
    ({"t": 1, "node": "c1", "service": "loadgen", "kind": "load_finished", "sent": 1, "ok": 1, "failed": 0, "x": 1}, "undeclared field"),
])
def test_check_names_what_is_wrong(event, problem):
    assert any(problem in p for p in check(event))
