"""The `mixed` scenario's draw of a flow per arrival, and its command-line weights."""

import random
from collections import Counter

import pytest
from django.conf import settings

from loadtest.mix import FLOWS, parse_mix, pick_flow


def test_each_arrival_draws_a_flow_with_the_mix_weights():
    rng = random.Random(7)
    drawn = Counter(pick_flow(rng, {"anonymous": 90, "logged_in": 8, "design": 2}) for _ in range(20_000))
    assert set(drawn) == {"anonymous", "logged_in", "design"}
    assert drawn["anonymous"] / 20_000 == pytest.approx(0.90, abs=0.01)
    assert drawn["logged_in"] / 20_000 == pytest.approx(0.08, abs=0.01)
    assert drawn["design"] / 20_000 == pytest.approx(0.02, abs=0.005)
    assert {pick_flow(rng, {"design": 1, "anonymous": 0}) for _ in range(100)} == {"design"}


@pytest.mark.parametrize(
    "mix", [{}, {"hello": 1}, {"mixed": 1}, {"design": -1, "anonymous": 2}, {"design": 0}]
)
def test_a_mix_of_unknown_flows_negative_or_no_weight_is_refused(mix):
    with pytest.raises(ValueError, match="a mix weighs"):
        pick_flow(random.Random(1), mix)


def test_the_command_line_mix_and_the_settings_default():
    assert parse_mix("anonymous:90, logged_in:8,design:2.5") == {
        "anonymous": 90,
        "logged_in": 8,
        "design": 2.5,
    }
    assert set(settings.LOAD_TEST["mix"]) == set(FLOWS)
