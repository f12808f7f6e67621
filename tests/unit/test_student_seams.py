"""Exercise 1's health rule and exercise 3's backup timer: tried before anything runs, used where halab's own would be, graded."""
import os
import textwrap
from pathlib import Path

import pytest

from lab import grade
from lab.core.errors import IllegalTransition
from lab.core.health import DOWN, FAIL, HaproxyRule, HealthCounter, HealthRule, HealthSettings
from lab.core.plugins import BACKUP_TIMER, HEALTH_RULE, NotImplementedYet, PluginError, check
from lab.core.schema import ConfigError
from lab.core.vrrp import BACKUP, MASTER, RfcTimer, Vrrp, VrrpSettings, master_down_interval, skew_time

from .configs import scenario_from

EX01 = Path("exercises/01-health-checks-and-failover")
EX03 = Path("exercises/03-vrrp-redundancy")

NO_FALL = """
from lab.core.health import DOWN, UP, PASS, HealthRule

class Eager(HealthRule):
    name = "eager"
    def step(self, state, health, result, settings):
        return (UP, settings.top) if result == PASS else (DOWN, 0)
"""

NO_SKEW = """
from lab.core.vrrp import BackupTimer

class NoSkew(BackupTimer):
    name = "no_skew"
    def after_advert(self, now, heard, mine, preempt, interval):
        return now + 3 * interval
"""


def write(tmp_path, text, cls, name="mine.py"):
    (tmp_path / name).write_text(textwrap.dedent(text))
    return f"{tmp_path / name}:{cls}"


# ---- the references are what halab itself runs ---------------------------------------------------
def test_haproxys_rule_is_the_counters_default_and_a_rule_of_ones_own_replaces_it(tmp_path):
    assert isinstance(HealthCounter("s1").rule, HaproxyRule)
    eager = check(write(tmp_path, NO_FALL, "Eager"), HEALTH_RULE)()
    counter = HealthCounter("s1", HealthSettings(rise=2, fall=3), rule=eager)
    counter.health = counter.settings.top
    assert counter.observe(FAIL, 1.0) is not None and counter.state == DOWN  # one failure, where HAProxy's needs three


def test_a_rule_answering_out_of_range_on_the_network_is_named_not_obeyed():
    class Wild(HealthRule):
        name = "wild"

        def step(self, state, health, result, settings):
            return "SIDEWAYS", 99

    with pytest.raises(IllegalTransition, match="rule 'wild' answered \\('SIDEWAYS', 99\\) to 'fail' in UP 2"):
        HealthCounter("s1", HealthSettings(rise=2, fall=3), rule=Wild()).observe(FAIL, 1.0)


@pytest.mark.parametrize("heard, preempt", [(0, True), (50, True), (50, False), (100, True), (150, True), (150, False)])
def test_rfc_timer_is_what_a_backup_does_on_each_advert(heard, preempt):
    machine = Vrrp(VrrpSettings(priority=100, advert_interval=1.0, preempt=preempt, address="10.0.0.3"))
    machine.start(0.0)
    before = machine.master_down_at
    machine.advert(10.0, heard, "10.0.0.2", 1.0)
    want = RfcTimer().after_advert(10.0, heard, 100, preempt, 1.0)
    assert machine.master_down_at == (want if want is not None else before)
    assert RfcTimer().after_advert(10.0, 0, 100, True, 1.0) == 10.0 + skew_time(100, 1.0)
    assert RfcTimer().after_advert(10.0, 150, 100, True, 1.0) == 10.0 + master_down_interval(100, 1.0)


def test_a_timer_without_skew_makes_two_backups_time_out_together(tmp_path):
    """The network consequence the grader looks for (who takes over), shown on the state machines alone."""
    def deadlines(timer):
        out = []
        for priority, address in ((125, "10.0.0.3"), (100, "10.0.0.4")):
            m = Vrrp(VrrpSettings(priority=priority, advert_interval=0.1, address=address), timer=timer)
            m.start(0.0)
            m.advert(1.0, 150, "10.0.0.2", 0.1)
            out.append(m.master_down_at)
        return out

    rfc = deadlines(RfcTimer())
    assert rfc[0] < rfc[1]  # the higher priority first, by Skew_Time
    assert len(set(deadlines(check(write(tmp_path, NO_SKEW, "NoSkew"), BACKUP_TIMER)()))) == 1


def test_the_timer_machine_takes_over_when_the_timer_a_student_set_runs_out(tmp_path):
    timer = check(write(tmp_path, NO_SKEW, "NoSkew"), BACKUP_TIMER)()
    m = Vrrp(VrrpSettings(priority=100, advert_interval=0.1, address="10.0.0.3"), timer=timer)
    m.start(0.0)
    m.advert(1.0, 150, "10.0.0.2", 0.1)
    assert m.master_down_at == pytest.approx(1.3)
    m.tick(1.29)
    assert m.state == BACKUP
    m.tick(1.3)
    assert m.state == MASTER


# ---- tried before anything is built --------------------------------------------------------------
@pytest.mark.parametrize("interface, text, cls, says", [
    (HEALTH_RULE, "from lab.core.health import HealthRule\nclass R(HealthRule):\n    def step(self, state, health, result, settings):\n"
                  "        return state\n", "R", "mine.py:3: step('UP', 0, 'pass', rise 2 fall 3) must return (UP or DOWN, a counter from 0 to 4)"),
    (HEALTH_RULE, "from lab.core.health import HealthRule\nclass R(HealthRule):\n    def step(self, state, health, result):\n"
                  "        return state, health\n", "R", "mine.py:3: step must take (self, state, health, result, settings)"),
    (HEALTH_RULE, "from lab.core.algorithms import Algorithm\nclass R(Algorithm):\n    pass\n", "R",
     "R must subclass HealthRule: write 'from lab.core.health import HealthRule'"),
    (BACKUP_TIMER, "from lab.core.vrrp import BackupTimer\nclass T(BackupTimer):\n    def after_advert(self, now, heard, mine, preempt, interval):\n"
                   "        return 3 * interval\n", "T", "after_advert(now=100.0, heard=0, mine=100, preempt=True, interval=1.0) must return a time >= now"),
    (BACKUP_TIMER, "from lab.core.vrrp import BackupTimer\nclass T(BackupTimer):\n    def after_advert(self, now, heard, mine, preempt, interval):\n"
                   "        return now + 1 / heard\n", "T", "mine.py:4: after_advert failed: ZeroDivisionError"),
    (BACKUP_TIMER, "from lab.core.vrrp import BackupTimer\nclass T(BackupTimer):\n    pass\n", "T",
     "T has no after_advert(self, now, heard, mine, preempt, interval) method"),
])
def test_each_mistake_in_a_rule_or_timer_is_named_with_its_file_and_line(tmp_path, interface, text, cls, says):
    with pytest.raises(PluginError) as e:
        check(write(tmp_path, text, cls), interface)
    assert says in str(e.value)


def test_the_shipped_starters_are_unfilled_and_the_solutions_pass():
    for folder, file, cls, interface in ((EX01, "rise_fall.py", "RiseFall", HEALTH_RULE), (EX03, "backup_timer.py", "MyTimer", BACKUP_TIMER)):
        with pytest.raises(NotImplementedYet, match="not implemented yet"):
            check(f"{(folder / 'starter' / file).resolve()}:{cls}", interface)
        assert check(f"{(folder / 'solution' / file).resolve()}:{cls}", interface).__name__ == cls


def test_a_scenario_resolves_a_rule_and_a_timer_and_refuses_them_where_they_cannot_run(tmp_path):
    write(tmp_path, NO_FALL, "Eager")
    write(tmp_path, NO_SKEW, "NoSkew", name="timer.py")
    source = str(tmp_path / "s.toml")
    s = scenario_from('duration = 5\n[topology]\nname = "single_lb"\n[balancer.health]\nrule = "mine.py:Eager"\n', source)
    assert s.balancer.health.rule == f"{tmp_path / 'mine.py'}:Eager"
    with pytest.raises(ConfigError, match="balancer.health.rule: a rule of your own runs in halab's balancer only"):
        scenario_from('duration = 5\n[topology]\nname = "single_lb"\n[balancer]\nimpl = "haproxy"\n[balancer.health]\n'
                      'rule = "mine.py:Eager"\n', source)
    with pytest.raises(ConfigError, match="balancer.health.rule: got 'hapoxy', expected a file of your own"):
        scenario_from('duration = 5\n[topology]\nname = "single_lb"\n[balancer.health]\nrule = "hapoxy"\n', source)
    s = scenario_from('duration = 5\n[topology]\nname = "active_standby"\n[vrrp]\nbackup_timer = "timer.py:NoSkew"\n', source)
    assert s.vrrp.backup_timer == f"{tmp_path / 'timer.py'}:NoSkew"
    with pytest.raises(ConfigError, match="vrrp.backup_timer: a timer of your own runs in halab's speaker only"):
        scenario_from('duration = 5\n[topology]\nname = "active_standby"\n[vrrp]\nimpl = "keepalived"\nbackup_timer = "timer.py:NoSkew"\n',
                      source)
    with pytest.raises(ConfigError, match="vrrp.backup_timer: .*timer.py:4: not implemented yet"):
        (tmp_path / "timer.py").write_text("from lab.core.vrrp import BackupTimer\nclass NoSkew(BackupTimer):\n"
                                           "    def after_advert(self, now, heard, mine, preempt, interval):\n        raise NotImplementedError\n")
        scenario_from('duration = 5\n[topology]\nname = "active_standby"\n[vrrp]\nbackup_timer = "timer.py:NoSkew"\n', source)


def test_the_shipped_scenarios_run_the_starter_and_say_so(tmp_path):
    for folder, name in ((EX01, "my-counter.toml"), (EX03, "my-timer.toml")):
        with pytest.raises(ConfigError, match="not implemented yet"):
            scenario_from((folder / name).read_text(), str(folder / name))


# ---- graded --------------------------------------------------------------------------------------
@pytest.fixture
def no_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the unit part only: no network run here


def test_grading_01_scores_the_solution_full_and_a_rule_without_fall_where_it_differs(tmp_path, no_root):
    exercise = grade.find("01")
    solution = grade.grade(exercise, EX01 / "solution", tmp_path)
    assert [r.earned == r.points for r in solution[:-1]] == [True] * 5 and sum(r.points for r in solution[:-1]) == exercise.unit_points
    (tmp_path / "rise_fall.py").write_text(textwrap.dedent(NO_FALL).replace("Eager", "RiseFall"))
    eager = {r.check: r for r in grade.grade(exercise, tmp_path, tmp_path)}
    assert eager["an UP server goes DOWN after exactly fall failures in a row"].measured == "DOWN DOWN DOWN ; DOWN DOWN"
    assert eager["a DOWN server comes back after exactly rise passes in a row"].earned == 0  # one pass is enough for it
    assert eager["the same as HAProxy's rule for every state, counter and result"].measured.startswith("14 differences, e.g. rise 2 fall 3, UP 3 on fail")
    starter = grade.grade(exercise, None, tmp_path)
    assert "rise_fall.py:43: not implemented yet" in starter[0].measured and sum(r.earned for r in starter) == 0


def test_grading_03_scores_the_solution_full_and_a_timer_without_skew_low(tmp_path, no_root):
    exercise = grade.find("03")
    solution = grade.grade(exercise, EX03 / "solution", tmp_path)
    assert [r.earned == r.points for r in solution[:-1]] == [True] * 6 and sum(r.points for r in solution[:-1]) == exercise.unit_points
    (tmp_path / "backup_timer.py").write_text(textwrap.dedent(NO_SKEW).replace("NoSkew", "MyTimer"))
    lazy = {r.check: r for r in grade.grade(exercise, tmp_path, tmp_path)}
    assert lazy["the higher-priority backup times out first (Skew_Time)"].measured == "0.3000 s vs 0.3000 s"
    assert lazy["a lower-priority master while we preempt: the timer keeps running"].measured == "53.0"
    assert sum(r.earned for r in lazy.values()) == 0
    starter = grade.grade(exercise, None, tmp_path)
    assert "not implemented yet" in starter[0].measured and sum(r.earned for r in starter) == 0
