"""Seeded chaos timelines: replayable, always valid, always repaired, never impossible."""
import pytest
import tomllib

import topologies
from lab.core.chaos import KINDS, ChaosSettings, as_toml, draw, targets
from lab.core.scenario import parse_scenario

TOPOLOGIES = {"single_lb": {}, "active_standby": {"gateways": 3}, "active_active": {}, "bonding": {}}


def layout(name, **params):
    return topologies.lookup(name, params, "t")[0]


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_every_drawn_timeline_is_a_valid_scenario_with_every_fault_repaired(name):
    lay = layout(name, **TOPOLOGIES[name])
    repairs = {repair for _, repair in KINDS.values()}
    for seed in range(60):
        entries = draw(lay, 20.0, seed, ChaosSettings(faults=4))
        assert entries, seed
        # the lab's own validation accepts it (no healing of what is not broken, no pausing the crashed...)
        parse_scenario({"duration": 20, "topology": {"name": name, **TOPOLOGIES[name]}, "faults": entries}, "chaos", topologies.lookup)
        open_faults = {}
        for e in entries:
            if e["action"] in repairs:
                open_faults.pop(e["target"])
            else:
                assert e["target"] not in open_faults
                open_faults[e["target"]] = e["at"]
        assert open_faults == {} and max(e["at"] for e in entries) <= 20.0 - 5.0


def test_the_same_seed_gives_the_same_timeline_and_another_seed_another():
    lay = layout("active_standby", gateways=3)
    assert draw(lay, 20, 7) == draw(lay, 20, 7)
    assert draw(lay, 20, 7) != draw(lay, 20, 8)


def test_faults_that_overlap_in_time_never_touch_the_same_machine():
    lay = layout("active_standby", gateways=3)
    by_target = {t.name: t.nodes for t in targets(lay, tuple(KINDS))}
    for seed in range(100):
        spans = {}
        for e in draw(lay, 20, seed, ChaosSettings(faults=5)):
            a, b = spans.get((e["note"], e["target"]), (e["at"], e["at"]))
            spans[(e["note"], e["target"])] = (min(a, e["at"]), max(b, e["at"]))
        items = list(spans.items())
        for i, ((_, t1), (a1, b1)) in enumerate(items):
            for (_, t2), (a2, b2) in items[i + 1:]:
                if a1 <= b2 and a2 <= b1:
                    assert not by_target[t1] & by_target[t2], (seed, t1, t2)


def test_clients_are_never_broken_and_kinds_can_be_chosen():
    lay = layout("single_lb")
    names = [t.name for t in targets(lay, tuple(KINDS))]
    assert names and not any(n.startswith("c") or "-c" in n for n in names)
    only = draw(lay, 20, 3, ChaosSettings(faults=3, kinds=("crash",)))
    assert {e["action"] for e in only} <= {"crash", "restart"}
    with pytest.raises(ValueError, match="unknown chaos kind"):
        ChaosSettings(kinds=("meteor",))


def test_a_timeline_prints_as_faults_tables_that_read_back_the_same():
    entries = draw(layout("bonding"), 15, 2)
    assert tomllib.loads(as_toml(entries))["faults"] == entries


def test_a_flapping_link_goes_down_and_up_three_times():
    entries = draw(layout("single_lb"), 20, 1, ChaosSettings(faults=1, kinds=("flap",)))
    assert [e["action"] for e in entries] == ["link_down", "link_up"] * 3
    assert len({e["target"] for e in entries}) == 1
