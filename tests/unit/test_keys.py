"""Counting the keys a hashing balancer moved, from request records."""
from lab.analysis.keys import key_moves, owners
from lab.analysis.metrics import compute


def req(t, path, server, ok=True):
    return {"kind": "request_finished", "t": t, "id": f"{t}-{path}", "path": path, "served_by": server if ok else None,
            "ok": ok, "latency": 0.001, "error": None if ok else "http_502", "upstream": server}


def test_owner_is_the_last_successful_answer_in_the_window():
    rs = [req(1, "/a", "o1"), req(2, "/a", "o2"), req(3, "/a", "o3", ok=False), req(9, "/a", "o4")]
    assert owners(rs, 0, 5) == {"/a": "o2"}


def test_moves_separate_the_keys_that_had_to_move_from_the_others():
    before = [req(1, f"/k{i}", f"o{i % 3 + 1}") for i in range(30)]  # o1, o2, o3 own 10 keys each
    # o3 leaves: its 10 keys go to o1; 5 of o1's keys move to o2 although they did not have to
    after = [req(10, f"/k{i}", "o1" if i % 3 == 2 else ("o2" if i % 3 == 0 and i < 15 else f"o{i % 3 + 1}")) for i in range(30)]
    after.append(req(11, "/new", "o1"))  # seen only after: not counted
    m = key_moves(before + after, (0, 5), (5, 20), "o3")
    assert (m.keys, m.moved, m.from_changed, m.others_moved) == (30, 15, 10, 5)
    assert m.fraction == 0.5 and m.others_fraction == 0.25


def test_report_counts_key_moves_only_for_many_key_runs_with_a_detected_fault():
    events = [{"kind": "load_started", "t": 0.0, "duration": 20},
              {"kind": "fault_applied", "t": 5.0, "action": "crash", "target": "o3", "affects": ["o3"]},
              {"kind": "health_changed", "t": 6.0, "node": "lb1", "server": "o3", "before": "UP", "after": "DOWN", "reason": "x"}]
    before = [req(1 + i / 100, f"/k{i}", f"o{i % 3 + 1}") for i in range(30)]
    after = [req(7 + i / 100, f"/k{i}", "o1" if i % 3 == 2 else f"o{i % 3 + 1}") for i in range(30)]
    (label, moves), = compute(events + before + after).key_moves
    assert label == "crash o3" and (moves.keys, moves.moved, moves.others_moved) == (30, 10, 0)
    few = [r for r in before + after if r["path"] in ("/k0", "/k1")]
    assert compute(events + few).key_moves == ()
