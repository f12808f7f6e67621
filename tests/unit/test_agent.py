"""The agent that keeps a remote server's ledger (lab.net.agent), driven through its JSON lines, no ssh."""
import io
import json
import subprocess
import sys
import time

from lab.net import agent
from lab.net.state import LabLock, process_start_time


def converse(state_dir, *requests):
    stdin = io.StringIO("".join(json.dumps(r) + "\n" for r in requests))
    stdout = io.StringIO()
    code = agent.serve(stdin, stdout, state_dir)
    return code, [json.loads(line) for line in stdout.getvalue().splitlines()]


def test_it_answers_each_request_and_a_bad_one_does_not_end_it(tmp_path):
    code, replies = converse(tmp_path, {"op": "time"}, {"op": "no_such_thing"}, {"op": "_private"}, {"op": "size", "path": "/nonexistent"})
    assert code == 0
    assert replies[0] == {"ok": True, "result": {"cleaned": []}}
    assert abs(replies[1]["result"] - time.time()) < 5
    assert replies[2] == {"ok": False, "error": "ValueError: no operation 'no_such_thing'"}
    assert replies[3]["ok"] is False
    assert replies[4] == {"ok": True, "result": 0}


def test_a_token_tells_a_shared_filesystem(tmp_path):
    (tmp_path / "token").write_text("abc123")
    _, replies = converse(tmp_path / "state", {"op": "hello", "token_path": str(tmp_path / "token")}, {"op": "hello"})
    assert replies[1]["result"]["token"] == "abc123" and replies[2]["result"]["token"] == ""
    assert replies[1]["result"]["python"] == sys.executable


def test_what_it_recorded_is_removed_when_its_input_ends(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    made = tmp_path / "made"
    try:
        code, replies = converse(tmp_path / "state", {"op": "record", "kind": "process", "pid": sleeper.pid, "what": "a service", "session": True},
                                 {"op": "mkdir", "path": str(made)}, {"op": "alive", "pid": sleeper.pid})
        assert code == 0 and all(r["ok"] for r in replies) and replies[3]["result"] is True
        sleeper.wait(timeout=5)  # killed by the agent's cleanup at the end of its input
        assert not made.exists()
        assert not (tmp_path / "state" / "ledger.json").exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_it_signals_only_processes_its_ledger_holds(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _, replies = converse(tmp_path, {"op": "signal", "pid": sleeper.pid, "sig": 15})
        assert replies[1] == {"ok": False, "error": f"ValueError: process {sleeper.pid} is not in this server's ledger"}
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_pid_reused_by_another_process_is_not_signalled(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    lock = LabLock(tmp_path)
    lock.acquire("test", "-")
    try:
        lock.ledger.data["processes"].append({"pid": sleeper.pid, "start": process_start_time(sleeper.pid) - 1, "what": "gone", "session": False})
        assert agent.Agent(lock).signal(sleeper.pid, 15) == []
        assert sleeper.poll() is None
    finally:
        lock.ledger.data["processes"] = []
        lock.release()
        sleeper.kill()
        sleeper.wait()


def test_a_second_agent_on_a_busy_server_says_who_holds_it(tmp_path):
    lock = LabLock(tmp_path)
    lock.acquire("a lab", "/runs/x")
    try:
        code, replies = converse(tmp_path, {"op": "time"})
        assert code == 1 and replies[0]["ok"] is False and "another halab lab is running" in replies[0]["error"]
    finally:
        lock.release()


def test_ready_pid_reads_only_what_came_after_the_offset(tmp_path):
    events = tmp_path / "o1-origin.jsonl"
    events.write_text('{"t":1,"kind":"service_ready","pid":11}\n')
    offset = events.stat().st_size
    a = agent.Agent(None)
    assert a.ready_pid(str(events), offset) is None
    with events.open("a") as f:
        f.write('{"t":2,"kind":"request_served"}\n{"t":3,"kind":"service_ready","pid":22}\n{"t":4,"kind":"serv')
    assert a.ready_pid(str(events), offset) == 22


def test_input_chains_that_drop_are_found():
    ruleset = """table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established accept
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t}
}
table ip nat {
\tchain input {
\t\ttype nat hook input priority 100; policy accept;
\t}
}
"""
    assert agent.dropping_input_chains(ruleset) == ["inet filter input"]
    assert agent.dropping_input_chains("") == []


def test_a_silent_lab_counts_as_gone_after_the_idle_time(tmp_path):
    """No request and no end of input (a connection whose far end vanished): the agent cleans up and exits by itself."""
    import itertools
    import os

    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    read, write = os.pipe()
    stdin = os.fdopen(read)
    try:
        lock_dir = tmp_path / "state"
        stdin_with_one = io.StringIO(json.dumps({"op": "record", "kind": "process", "pid": sleeper.pid, "what": "x", "session": True}) + "\n")
        began = time.time()
        # one request, then a pipe that stays open and silent
        chained = itertools.chain(stdin_with_one, stdin)
        out = io.StringIO()
        assert agent.serve(chained, out, lock_dir, idle=0.3) == 0
        assert time.time() - began < 3
        sleeper.wait(timeout=5)
        assert [json.loads(line)["ok"] for line in out.getvalue().splitlines()] == [True, True]
    finally:
        os.close(write)
        stdin.close()
        if sleeper.poll() is None:
            sleeper.kill()


def test_files_travel_through_the_agent_when_the_servers_share_no_filesystem(tmp_path):
    """Servers.write and Servers.gather against a real Agent answering in-process (no ssh): a config sent there, event
    logs copied back; with a shared filesystem neither moves a byte."""
    from lab.core.cluster import ClusterSettings
    from lab.net.cluster import Servers

    there = tmp_path / "there"
    lock = LabLock(tmp_path / "state")
    lock.acquire("test", "-")
    real = agent.Agent(lock)

    class Link:  # AgentLink's interface over the agent's own methods
        def ask(self, op, **args):
            return getattr(real, op)(**args)

    try:
        servers = Servers(ClusterSettings(servers=("localhost", "lab2")), tmp_path)
        servers.agents["lab2"] = Link()
        servers.shared["lab2"] = False
        servers.write("lab2", there / "config" / "o1-origin.json", '{"node": "o1"}')
        assert (there / "config" / "o1-origin.json").read_text() == '{"node": "o1"}'
        (there / "events").mkdir()
        (there / "events" / "o1-origin.jsonl").write_text('{"t":1,"kind":"service_ready","pid":7}\n')
        here = tmp_path / "here" / "events"  # the lab uses the same path on both servers; here they differ, to be seen
        copied = servers.gather("lab2", there / "events", into=here)
        assert copied == [here / "o1-origin.jsonl"] and copied[0].read_text() == '{"t":1,"kind":"service_ready","pid":7}\n'
        servers.shared["lab2"] = True
        assert servers.gather("lab2", there / "events", into=tmp_path / "elsewhere") and not (tmp_path / "elsewhere").exists()
        servers.write("lab2", tmp_path / "x.json", "{}")
        assert not (tmp_path / "x.json").exists()
    finally:
        lock.release()
