"""The hostile HTTP corpus on a real network: halab next to HAProxy and nginx, from the same settings.

The origins log every request they parse. The test holds halab to what the
issue asked: no request reaches an origin that halab did not route, every
shape is answered or closed within the timeouts, every shape is refused or
served as a careful gateway would, and a 64 MiB hostile upload leaves
halab's memory within its bound. The table of all three gateways' answers
is printed (``pytest -s``) and kept in the run directory.
"""
from lab.hostile import MEMORY_BOUND_MIB, run_hostile, table


def test_no_request_reaches_an_origin_unrouted_and_nothing_hangs(tmp_path):
    run = run_hostile(tmp_path / "run", ("halab", "haproxy", "nginx"), say=lambda *a: None)
    lines = table(run)
    (tmp_path / "hostile.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert run.problems == []
    assert len(run.results["halab"]) >= 60 and sum(run.parsed["halab"].values()) >= 15  # valid shapes reached the origins
    refused = {r["name"]: r["statuses"] for r in run.results["halab"]}
    for name in ("connection_content_length", "connection_transfer_encoding", "connection_host"):
        assert refused[name] == [400], name  # the smuggling through Connection that started the issue
    halab = run.memory["halab"]
    assert halab["sent_mib"] >= 60 and halab["peak"] - halab["before"] <= MEMORY_BOUND_MIB
