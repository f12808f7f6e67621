"""Predictions in a student's answers file, judged against metrics whose every value is known."""
import pytest

from lab.analysis.metrics import compute
from lab.analysis.predictions import MEASURES, Prediction, answers_of, judge, measured, parse_prediction, texts

from .test_metrics import synthetic


@pytest.fixture(scope="module")
def metrics():
    return compute(synthetic())  # o1's link cut at 5 s, DOWN at 6.5 s, healed at 10 s, UP at 11 s


def test_each_measure_reads_what_it_says(metrics):
    values = {name: measured(metrics, parse_prediction(name, {"within": 0}, "pack"))
              for name in ("availability", "lost", "share o1", "share o9", "detection", "detection o1", "detection o2", "outage",
                           "reconverge", "failover")}
    assert values["availability"] == pytest.approx(metrics.request_availability) and values["lost"] == metrics.failed
    assert values["share o1"] == pytest.approx(metrics.served_by["o1"] / metrics.ok) and values["share o9"] == 0
    assert values["detection"] == values["detection o1"] == pytest.approx(1.5) and values["detection o2"] is None
    assert values["outage"] == pytest.approx(max(o.duration for o in metrics.outages))
    assert values["reconverge"] == pytest.approx(1.0) and values["failover"] is None  # no VRRP in this lab


def test_a_prediction_within_its_tolerance_scores_and_one_outside_does_not():
    p = Prediction("share o3", 0.05, 2)
    assert judge(p, 0.12, 0.10) == (True, "predicted 0.12, measured 0.1 (within ±0.05: yes)")
    assert judge(p, 0.25, 0.10)[0] is False and "within ±0.05: no" in judge(p, 0.25, 0.10)[1]
    assert judge(p, 0.15, 0.10)[0] is True  # the edge counts
    assert judge(p, None, 0.1) == (False, "no prediction for 'share o3'")
    assert "is not a number" in judge(p, "about a tenth", 0.1)[1] and judge(p, True, 1.0)[0] is False
    assert "measured no share o3" in judge(p, 0.1, None)[1]


@pytest.mark.parametrize("name, spec, says", [
    ("speed", {"within": 1}, "no such measure; known: availability, lost, share"),
    ("share", {"within": 0.1}, 'say which one, e.g. "share o3"'),
    ("lost", {"points": 2}, "expected { within = TOLERANCE, points = N }"),
    ("lost", {"within": 1, "weight": 2}, "expected { within"),
    ("lost", {"within": -1}, "a number of 0 or more"),
    ("lost", {"within": 1, "points": 1.5}, "whole numbers of points"),
])
def test_each_mistake_in_a_packs_prediction_is_named(name, spec, says):
    with pytest.raises(ValueError, match=f"pack.toml: scenario\\[0\\]: predict '{name}'.*{__import__('re').escape(says)}"):
        parse_prediction(name, spec, "pack.toml: scenario[0]")


def test_an_answers_file_holds_numbers_to_score_and_text_to_read():
    answers = answers_of('[two-left]\n"share  o3" = 0.1\nwhy = "o3 is slow"\n[other]\nlost = 3\n', "answers.toml")
    assert answers == {"two-left": {"share o3": 0.1, "why": "o3 is slow"}, "other": {"lost": 3}}
    assert texts(answers) == [("two-left", "why", "o3 is slow")]
    with pytest.raises(ValueError, match="answers.toml: not valid TOML"):
        answers_of("share o3 = ", "answers.toml")
    with pytest.raises(ValueError, match="one table per scenario, e.g. \\[two-left\\]; lost is not a table"):
        answers_of("lost = 3\n", "answers.toml")


def test_every_measure_says_what_it_measures():
    assert all(doc and callable(read) for doc, read in MEASURES.values())
