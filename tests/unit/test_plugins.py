"""A student's algorithm file: every way it can be wrong is one error naming the file and line, before anything runs."""
import os
import textwrap
from pathlib import Path

import pytest

from lab.core.plugins import NotImplementedYet, PluginError, check, is_reference
from lab.core.schema import ConfigError

from .configs import scenario_from

GOOD = """
from lab.core.algorithms import Algorithm

class First(Algorithm):
    def choose(self, candidates, request, rng):
        return candidates[0]
"""


def write(tmp_path, text, name="mine.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return f"{path}:First"


def error(tmp_path, text):
    with pytest.raises(PluginError) as e:
        check(write(tmp_path, text))
    return str(e.value)


def test_a_good_file_loads_and_answers(tmp_path):
    assert check(write(tmp_path, GOOD)).__name__ == "First"


@pytest.mark.parametrize("text, says", [
    ("def broken(:\n", "mine.py:1: syntax error"),
    ("import nonexistent_module_xyz\n", "mine.py:1: importing the file failed: ModuleNotFoundError"),
    ("class Other:\n    pass\n", "no class 'First' in the file (classes there: Other)"),
    ("class First:\n    def choose(self, candidates, request, rng):\n        return candidates[0]\n", "must subclass Algorithm"),
    ("from lab.core.algorithms import Algorithm\nclass First(Algorithm):\n    pass\n", "has no choose"),
    ("from lab.core.algorithms import Algorithm\nclass First(Algorithm):\n    def choose(self, candidates):\n        return candidates[0]\n",
     "mine.py:3: choose must take (self, candidates, request, rng)"),
    ("from lab.core.algorithms import Algorithm\nclass First(Algorithm):\n    def choose(self, candidates, request, rng):\n"
     "        return candidates[5]\n", "mine.py:4: choose failed: IndexError"),
    ("from lab.core.algorithms import Algorithm\nclass First(Algorithm):\n    def choose(self, candidates, request, rng):\n"
     "        return candidates[0].name\n", "choose must return one of the candidates it was given, it returned 's1'"),
])
def test_each_mistake_is_named_with_its_file_and_line(tmp_path, text, says):
    assert says in error(tmp_path, text)


def test_an_unfilled_starter_is_not_implemented_yet_not_a_crash(tmp_path):
    with pytest.raises(NotImplementedYet, match=r"mine.py:5: not implemented yet \(TODO: draw two\)"):
        check(write(tmp_path, """
            from lab.core.algorithms import Algorithm
            class First(Algorithm):
                def choose(self, candidates, request, rng):
                    raise NotImplementedError("TODO: draw two")
        """))


def test_the_shipped_starter_is_unfilled_and_the_solution_passes():
    folder = Path("exercises/02-balancing-algorithms")
    with pytest.raises(NotImplementedYet):
        check(f"{(folder / 'starter/least_loaded_of_two.py').resolve()}:PowerOfTwo")
    assert check(f"{(folder / 'solution/least_loaded_of_two.py').resolve()}:PowerOfTwo")


def scenario_with(algorithm, source, impl="halab"):
    return scenario_from(f'duration = 5\n[topology]\nname = "single_lb"\n[balancer]\nalgorithm = "{algorithm}"\nimpl = "{impl}"\n',
                         source)


def test_a_scenario_names_the_file_relative_to_itself_and_gets_it_checked(tmp_path):
    write(tmp_path, GOOD)
    s = scenario_with("mine.py:First", str(tmp_path / "s.toml"))
    assert s.balancer.algorithm == f"{tmp_path / 'mine.py'}:First" and is_reference(s.balancer.algorithm)
    with pytest.raises(ConfigError, match="balancer.algorithm: .*no such file"):
        scenario_with("missing.py:First", str(tmp_path / "s.toml"))
    with pytest.raises(ConfigError, match="runs in halab's balancer only"):
        scenario_with("mine.py:First", str(tmp_path / "s.toml"), impl="haproxy")
    with pytest.raises(ConfigError, match="got 'roundrobbin', expected one of .*; did you mean 'roundrobin'"):
        scenario_with("roundrobbin", str(tmp_path / "s.toml"))


def test_grading_scores_the_solution_full_and_an_always_first_answer_low(tmp_path, monkeypatch):
    from lab import grade

    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the unit part only: no network run here
    exercise = grade.find("02")
    solution = grade.grade(exercise, Path("exercises/02-balancing-algorithms/solution"), tmp_path)
    assert [r.earned == r.points for r in solution[:-1]] == [True] * 4 and "needs root" in solution[-1].check
    (tmp_path / "least_loaded_of_two.py").write_text(GOOD.replace("First", "PowerOfTwo"))
    lazy = {r.check: r for r in grade.grade(exercise, tmp_path, tmp_path)}
    assert lazy["with two servers, always the less busy one"].earned == 0
    assert lazy["spreads evenly when all are equally busy (random draws, not always the first)"].measured.startswith("s1 100%")
    starter = grade.grade(exercise, None, tmp_path)
    assert "not implemented yet" in starter[0].measured and sum(r.earned for r in starter) == 0
