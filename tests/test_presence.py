"""Presence rules: JSON round trip, batch equals one by one, and what each kind adds up."""

import pandas as pd
import pytest

from themes.presence import PresenceRule, feature_table

RULES = [
    PresenceRule(kind="count", k={"t": 2}, thresholds={"t": 0.5}),
    PresenceRule(kind="max", cut={"t": 0.8}, thresholds={"t": 0.5}),
    PresenceRule(kind="noisy_or", cut={"t": 2.0}, thresholds={"t": 0.5}),
    PresenceRule(kind="logistic", coef={"t": [1.0, 4.0, 0.5, 0.0, -0.2]}, intercept={"t": -4.0},
                 thresholds={"t": 0.5}),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.kind for r in RULES])
def test_presence_presence_rule_round_trips_as_json_and_decides_alike_one_by_one(rule):
    import json

    again = PresenceRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule
    docs = {"a": [0.9, 0.6, 0.1], "b": [0.55], "c": [0.3, 0.2], "d": [0.95, 0.85, 0.9, 0.7]}
    scored = pd.DataFrame([{"doc_id": d, "theme": "t", "score": s, "tagged": s >= 0.5}
                           for d, scores in docs.items() for s in scores])
    table = feature_table(scored)
    batch = dict(zip(table["doc_id"], again.present(table)))
    assert batch == {d: again.present_in("t", s) for d, s in docs.items()}
    assert batch["d"] and not batch["c"]


def test_presence_noisy_or_adds_up_weak_passages_that_max_does_not():
    many_weak = [0.6] * 6  # noisy-OR evidence 6 * ln(2.5) = 5.5; best score 0.6
    assert PresenceRule(kind="noisy_or", cut={"t": 3.0}).present_in("t", many_weak)
    assert not PresenceRule(kind="max", cut={"t": 0.8}).present_in("t", many_weak)


def test_presence_unknown_rule_kind_and_a_stale_card_rule_are_coded():
    with pytest.raises(ValueError, match="kind 'median' is unknown") as error:
        PresenceRule(kind="median")
    assert error.value.code == "E604"
    with pytest.raises(ValueError, match="--write-card") as error:
        PresenceRule.from_dict({"kind": "logistic", "features": ["max"]})
    assert error.value.code == "E605"
