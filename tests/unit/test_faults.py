"""The fault vocabulary is declared once (lab.core.faults) and everything that names a fault derives from it."""
import re
from pathlib import Path

import pytest

from lab.core import chaos, faults
from lab.core.faults import ACTIONS, BROKEN_SETS, FAULTS, NONE, REPAIR_OF, REPAIRS, STOPS_SERVICES

ROOT = Path(__file__).resolve().parents[2]


def test_every_fault_has_exactly_one_repair_on_the_same_broken_set_and_target_kind():
    assert set(REPAIR_OF) == set(FAULTS)
    for repair, fault in REPAIRS.items():
        assert ACTIONS[repair].broken == ACTIONS[fault].broken and ACTIONS[repair].target == ACTIONS[fault].target
    assert len(BROKEN_SETS) == len(FAULTS)  # one set per fault: restore and the timeline check walk them
    assert STOPS_SERVICES == ("crash", "poweroff")


def test_complaints_read_as_sentences():
    assert ACTIONS["link_up"].complaint("o1-s1", 1.0) == "link o1-s1 is not down at 1.0 s (nothing to heal)"
    assert ACTIONS["poweroff"].complaint("gw1", 2.0) == "gw1 is already powered off at 2.0 s"
    assert ACTIONS["poweron"].complaint("gw1", 2.0) == "gw1 is not powered off at 2.0 s (nothing to power on)"
    assert ACTIONS["unpartition"].complaint("gw1/gw2", 3.0) == "gw1/gw2 are not partitioned at 3.0 s (nothing to heal)"


def test_cli_verbs_are_unique_and_usage_names_the_argument():
    verbs = [a.verb for a in ACTIONS.values()]
    assert len(verbs) == len(set(verbs))
    assert faults.usage(ACTIONS["link_down"]).startswith("fail LINK: ")
    assert faults.usage(ACTIONS["partition"]).startswith("partition A/B: ")
    assert faults.usage(ACTIONS["restore"]).startswith("restore: ")


def test_the_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"<!-- fault-table[^>]*-->\n(.*?)\n<!-- /fault-table -->", readme, re.S)
    assert shown and shown.group(1) == faults.markdown_table(), "run: python -c 'from lab.core import faults; print(faults.markdown_table())'"


def test_the_injector_has_a_method_per_action_and_only_declared_actions_can_be_applied():
    pytest.importorskip("mininet")
    from lab.net.faults import Faults
    from lab.net.lab import LabError

    for action in ACTIONS.values():
        assert callable(getattr(Faults, action.name if action.target != NONE else "restore"))
    injector = Faults.__new__(Faults)  # no lab is needed to refuse a non-action
    for bogus in ("broken", "_record", "apply", "restore_all", "__init__"):
        with pytest.raises(LabError, match="unknown fault action"):
            injector.apply(bogus, "o1")


def test_cli_offers_every_action_by_its_verb():
    pytest.importorskip("mininet")
    from lab.labcli import LabCLI

    for action in ACTIONS.values():
        assert getattr(LabCLI, f"do_{action.verb}").__doc__ == faults.usage(action)


def test_chaos_kinds_pair_each_fault_with_its_declared_repair():
    for fault, repair in chaos.KINDS.values():
        assert REPAIR_OF[fault] == repair
