"""The ship rule on evaluation reports: each criterion can fail on its own, and reports must be comparable."""
import pytest

from training.ship_rule import checks, table

BASE = {"inputs": "thin", "n_validation": 85, "seeds": 4, "class_top1_generated": 0.50, "template_ratio_edges": 0.40,
        "worst_class_fidelity": 0.20, "sketch_fidelity_f2px": 0.45, "diversity_mean_abs_diff": 0.08}
WINNER = {**BASE, "class_top1_generated": 0.56, "template_ratio_edges": 0.45, "worst_class_fidelity": 0.25,
          "sketch_fidelity_f2px": 0.43, "diversity_mean_abs_diff": 0.06}


def test_a_candidate_better_on_every_criterion_ships():
    rows = checks(WINNER, BASE)
    assert all(r.passed for r in rows) and "| judge top-1 | 0.5600 | 0.5000 |" in table(rows)


@pytest.mark.parametrize("key, value, failing", [
    ("class_top1_generated", 0.54, "judge top-1"),  # +4 points is not +5
    ("template_ratio_edges", 0.40, "template ratio (edges)"),  # equal is not higher
    ("worst_class_fidelity", 0.19, "worst-class fidelity"),
    ("sketch_fidelity_f2px", 0.41, "fidelity"),  # 0.04 lower
    ("diversity_mean_abs_diff", 0.04, "seed diversity"),
])
def test_each_criterion_fails_alone(key, value, failing):
    rows = checks({**WINNER, key: value}, BASE)
    assert [r.name for r in rows if not r.passed] == [failing]


def test_reports_of_different_inputs_are_refused():
    with pytest.raises(ValueError, match="not comparable: n_validation"):
        checks({**WINNER, "n_validation": 36}, BASE)


def test_the_keep_rule_allows_noise_and_fails_each_figure_beyond_it():
    from training.ship_rule import keep_checks
    within = {**BASE, "class_top1_generated": 0.475, "template_ratio_edges": 0.36, "worst_class_fidelity": 0.175,
              "sketch_fidelity_f2px": 0.445, "diversity_mean_abs_diff": 0.05}
    assert all(r.passed for r in keep_checks(within, BASE))
    for key, value, failing in [("class_top1_generated", 0.465, "judge top-1"),
                                ("template_ratio_edges", 0.34, "template ratio (edges)"),
                                ("worst_class_fidelity", 0.165, "worst-class fidelity"),
                                ("sketch_fidelity_f2px", 0.435, "fidelity"),
                                ("diversity_mean_abs_diff", 0.049, "seed diversity")]:
        assert [r.name for r in keep_checks({**within, key: value}, BASE) if not r.passed] == [failing]
    with pytest.raises(ValueError, match="not comparable: inputs"):
        keep_checks({**within, "inputs": "edges"}, BASE)
