"""The investigation exercises of chapters 5 to 8 (05.6, 05.7, 06.5, 07.5, 08.5) name the mistake:
the self-check's message for a wrong answer of ``check_answers`` carries the hint keyed on it.
(That every wrong answer fails and every alternative passes is ``test_check_quality``'s job.)"""
from __future__ import annotations

import pytest

from check_answers import WRONG
from mechlib.teaching.registry import EXERCISE_BY_ID

#: (exercise, wrong answer) -> words its self-check message must contain
HINTS = {
    ("05.6", "cheapest cut (argmin)"): "the cut that costs least",
    ("05.6", "loss with the cut, not the rise"): "minus the clean model's loss",
    ("05.6", "every position scored (mask ignored)"): "you averaged over every position",
    ("05.7", "signs flipped (clean minus ablated)"): "the sign is flipped",
    ("05.7", "entropy instead of the top guess"): "the change of the entropy",
    ("05.7", "probability of the correct token"): "the probability of the correct token",
    ("06.5", "share as a percentage"): "not a percentage",
    ("06.5", "no mean logit subtracted"): "subtract each term's mean logit",
    ("07.5", "receiver first"): "the sender comes first",
    ("07.5", "highest composition score (the screen)"): "a screen of the weights alone",
    ("08.5", "b_O added to each head"): "it belongs to the layer",
    ("08.5", "largest single-head term of the expansion"): "the virtual paths through it included",
}


@pytest.mark.parametrize("ex_id, name", list(HINTS), ids=[f"{i}-{n}" for i, n in HINTS])
def test_the_self_check_names_the_mistake(ex_id, name):
    result = EXERCISE_BY_ID[ex_id].check(WRONG[ex_id][name], verbose=False)
    assert result.status == "failed" and HINTS[ex_id, name] in result.message, result.message


def test_a_sender_chosen_by_its_attention_is_told_so_not_told_it_read_the_weights():
    """03.5: the strongest previous-token head is the key sender on some batches, a near-tie on others;
    where the grader refuses it, the hint names both proxies that pick that head, not the weights alone."""
    from check_answers import SENDER_BY_ATTENTION

    ex = EXERCISE_BY_ID["03.5"]
    result = ex.check(SENDER_BY_ATTENTION, verbose=False, cases=ex.cases(2**31 - 1))
    assert result.status == "failed" and "previous-token head by its attention" in result.message, result.message
