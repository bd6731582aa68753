"""BudgetController: the model card's newline rule, the grace cut and the empty-answer guard."""

from __future__ import annotations

from engine.generate.text.budget import CLOSE_AT_NEWLINE, CLOSE_CUT, BudgetController, answer_reserve

PLENTY = 100_000


def test_no_budget_never_closes() -> None:
    c = BudgetController(None, max_tokens=PLENTY)
    assert c.close_before_start() is None
    assert all(c.after_reasoning_token(n, "x\n", PLENTY) is None for n in range(1, 5000))


def test_budget_zero_closes_before_the_first_token() -> None:
    c = BudgetController(0, max_tokens=PLENTY)
    assert c.close_before_start() == CLOSE_AT_NEWLINE
    assert c.closed_by_budget


def test_waits_for_the_next_newline_after_the_budget() -> None:
    c = BudgetController(10, max_tokens=PLENTY)
    assert c.after_reasoning_token(9, "word\n", PLENTY) is None  # before the budget, newlines don't matter
    assert c.after_reasoning_token(10, " word", PLENTY) is None
    assert c.after_reasoning_token(11, " more", PLENTY) is None
    assert c.after_reasoning_token(12, ".\n", PLENTY) == CLOSE_AT_NEWLINE


def test_newline_inside_a_token_still_ends_the_line() -> None:
    c = BudgetController(5, max_tokens=PLENTY)
    assert c.after_reasoning_token(6, ".\nThe", PLENTY) == "\n" + CLOSE_AT_NEWLINE


def test_cuts_after_the_grace_tokens() -> None:
    c = BudgetController(10, max_tokens=PLENTY, grace=500)
    assert c.after_reasoning_token(509, " w", PLENTY) is None
    assert c.after_reasoning_token(510, " w", PLENTY) == CLOSE_CUT


def test_empty_answer_guard_closes_early_whatever_the_budget() -> None:
    c = BudgetController(None, max_tokens=100, closing_length=4)
    reserve = answer_reserve(100)
    assert reserve == 25
    assert c.after_reasoning_token(60, " w", tokens_left=30) is None
    assert c.after_reasoning_token(61, " w", tokens_left=29) == CLOSE_CUT
    assert c.closed_by_budget


def test_answer_reserve_bounds() -> None:
    assert answer_reserve(1) == 8
    assert answer_reserve(4096) == 512
    assert answer_reserve(10**6) == 512


def test_guard_only_when_asked_and_only_while_the_closing_fits() -> None:
    off = BudgetController(None, max_tokens=100, closing_length=4, answer_room=False)
    assert off.after_reasoning_token(61, " w", tokens_left=29) is None  # the API's default
    tiny = BudgetController(None, max_tokens=4, closing_length=5)
    # 3 tokens left cannot hold the 5-token closing: no half-written ".\n" in the reasoning
    assert tiny.after_reasoning_token(1, " w", tokens_left=3) is None
    assert not tiny.closed_by_budget
    exact = BudgetController(None, max_tokens=6, closing_length=5)
    assert exact.after_reasoning_token(1, " w", tokens_left=5) == CLOSE_CUT


def test_requests_are_sized_to_where_the_rule_can_act() -> None:
    c = BudgetController(10, max_tokens=PLENTY, grace=500, answer_room=False)
    assert c.tokens_before_decision(0, PLENTY) == 10  # up to the budget
    assert c.tokens_before_decision(10, PLENTY) == 500  # then through the grace
    assert c.tokens_before_decision(400, PLENTY) == 110
    assert c.tokens_before_decision(3, tokens_left=4) == 4  # never past max_tokens
    guarded = BudgetController(None, max_tokens=100, closing_length=4)
    assert guarded.tokens_before_decision(0, 100) == 100 - 4 - 25  # where the guard fires
    assert guarded.after_reasoning_token(71, " w", tokens_left=29) == CLOSE_CUT
    assert BudgetController(None, max_tokens=10, closing_length=4).tokens_before_decision(0, 3) == 1


def test_ended_by_the_rule_not_by_the_model_past_the_budget() -> None:
    local = BudgetController(5, max_tokens=PLENTY)
    assert not local.ended_by_rule(9, 9)  # the model closed on its own, past the budget
    assert local.after_reasoning_token(10, "x\n", PLENTY) == CLOSE_AT_NEWLINE
    assert local.ended_by_rule(10, 10)
    server = BudgetController(5, max_tokens=PLENTY, applied_by_server=True)  # it cannot say who closed
    assert not server.ended_by_rule(4, 4) and server.ended_by_rule(5, 5)
    guarded = BudgetController(None, max_tokens=100, closing_length=4, applied_by_server=True)
    assert not guarded.ended_by_rule(70, 70) and guarded.ended_by_rule(71, 71)  # where the guard acts



def test_the_cause_says_which_rule_closed_the_reasoning() -> None:
    from engine.api import ReasoningEndCause

    guard = BudgetController(None, max_tokens=100, closing_length=4)
    assert guard.after_reasoning_token(61, " w", tokens_left=29) == CLOSE_CUT
    assert guard.cause is ReasoningEndCause.ANSWER_ROOM  # "no limit": the answer's room, not a budget
    budget = BudgetController(10, max_tokens=PLENTY)
    assert budget.after_reasoning_token(12, ".\n", PLENTY) == CLOSE_AT_NEWLINE
    assert budget.cause is ReasoningEndCause.BUDGET
    zero = BudgetController(0, max_tokens=PLENTY)
    zero.close_before_start()
    assert zero.cause is ReasoningEndCause.BUDGET
