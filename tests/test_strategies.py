"""Pair selection on hand-built prompts where the right pair is known, and against a literal
per-prompt reading of SPEC §4 on random tables and candidate sets."""

import itertools

import numpy as np
import pytest

from zebra.errors import ZebraError
from zebra.strategies import kinship_rank, select, select_baseline

# Four models. MB-SUP: A best, then B, C, D. MB-SIM chosen by hand:
# A~B 0.20 (least alike), A~C 0.90, A~D 0.50, B~C 0.60, B~D 0.95 (most alike), C~D 0.70.
SUP = np.array([0.9, 0.7, 0.5, 0.1])
SIM = np.array([
    [1.00, 0.20, 0.90, 0.50],
    [0.20, 1.00, 0.60, 0.95],
    [0.90, 0.60, 1.00, 0.70],
    [0.50, 0.95, 0.70, 1.00],
])
A, B, C, D = range(4)


def one(cand, strategy, **kw):
    sel = select(np.array([cand]), SUP, SIM, strategy, **kw)
    if not sel.ok[0]:
        return None
    return int(sel.chosen_model[0]), int(sel.rejected_model[0])


def test_sup_takes_top_two():
    assert one([D, B, A, C], "sup", tau=0.0) == (A, B)


def test_sup_respects_tau():
    # A~B = 0.20 < 0.5: the best admissible pair by MB-SUP sum is A,C (1.4), not B,C (1.2).
    assert one([D, B, A, C], "sup", tau=0.5) == (A, C)


def test_sim_takes_most_similar_pair_and_chooses_higher_sup():
    assert one([A, B, C, D], "sim", tau=0.0) == (B, D)
    assert one([D, B], "sim", tau=0.0) == (B, D)  # order of slots does not decide the label


def test_sim_least_takes_least_similar_pair_above_tau():
    assert one([A, B, C, D], "sim_least", tau=0.0) == (A, B)
    assert one([A, B, C, D], "sim_least", tau=0.3) == (A, D)


def test_a_similarity_exactly_at_tau_is_admissible():
    """Paper §3.6: pairs with MB-SIM ≥ τ. A~D is exactly 0.50: admitted at τ = 0.5, not above it."""
    assert SIM[A, D] == 0.5
    for strategy in ("sup", "sim", "sim_least", "sup_sim"):
        assert one([A, D], strategy, tau=0.5) == (A, D), strategy
        assert one([A, D], strategy, tau=np.nextafter(0.5, 1)) is None, strategy
    # the boundary decides between pairs too: at τ = 0.5 SIM-least takes A~D (0.50), above it B~C (0.60)
    assert one([A, B, C, D], "sim_least", tau=0.5) == (A, D)
    assert one([A, B, C, D], "sim_least", tau=np.nextafter(0.5, 1)) == (B, C)


def test_tau_can_leave_no_pair():
    sel = select(np.array([[A, B, -1, -1]]), SUP, SIM, "sim", tau=0.5)
    assert not sel.ok[0] and sel.below_tau[0] and not sel.too_few[0]
    assert sel.chosen[0] == -1 and sel.rejected[0] == -1


def test_fewer_than_two_candidates():
    sel = select(np.array([[A, -1, -1, -1], [-1, -1, -1, -1]]), SUP, SIM, "sup", tau=0.0)
    assert not sel.ok.any() and sel.too_few.all()


def test_combined_is_between():
    # rank_weight·mean MB-SUP + similarity_weight·MB-SIM; with equal weights:
    # A,C: 0.5·0.7 + 0.5·0.90 = 0.800 ; B,D: 0.5·0.4 + 0.5·0.95 = 0.675 ; A,B: 0.5·0.8 + 0.5·0.2 = 0.5
    assert one([A, B, C, D], "sup_sim", tau=0.0) == (A, C)
    assert one([A, B, C, D], "sup_sim", tau=0.0, rank_weight=1, similarity_weight=0) == (A, B)
    assert one([A, B, C, D], "sup_sim", tau=0.0, rank_weight=0, similarity_weight=1) == (B, D)


def test_combined_weights_must_be_usable():
    with pytest.raises(ZebraError, match="--rank-weight"):
        one([A, B], "sup_sim", rank_weight=0, similarity_weight=0)


def test_equal_sup_goes_to_table_order():
    sup = np.array([0.5, 0.5, 0.1])
    sim = np.ones((3, 3))
    sel = select(np.array([[1, 0, 2]]), sup, sim, "sup", tau=0.0)
    assert (sel.chosen_model[0], sel.rejected_model[0]) == (0, 1)
    assert (sel.chosen[0], sel.rejected[0]) == (1, 0)  # slots follow the models


def test_kinship_rank_by_hand():
    cand = np.array([[A, B, C, D]])
    # SUP picks (A, B). Rivals of A among the others: C (0.90), D (0.50); B is 0.20 → rank 3.
    sel = select(cand, SUP, SIM, "sup", tau=0.0)
    assert kinship_rank(cand, sel, SIM)[0] == 3
    # SIM picks (B, D): D is B's closest → rank 1.
    sel = select(cand, SUP, SIM, "sim", tau=0.0)
    assert kinship_rank(cand, sel, SIM)[0] == 1
    # Two candidates only: rank 1 by definition.
    sel = select(np.array([[A, B, -1, -1]]), SUP, SIM, "sup", tau=0.0)
    assert kinship_rank(np.array([[A, B, -1, -1]]), sel, SIM)[0] == 1


def test_kinship_rank_ties_share_the_better_rank():
    sim = np.array([[1, 0.5, 0.5, 0.9], [0.5, 1, 0.1, 0.1], [0.5, 0.1, 1, 0.1], [0.9, 0.1, 0.1, 1]])
    sup = np.array([0.9, 0.8, 0.1, 0.0])
    cand = np.array([[0, 1, 2, 3]])
    sel = select(cand, sup, sim, "sup", tau=0.0)  # (0, 1); 3 is closer (0.9), 2 ties with 1 (0.5)
    assert kinship_rank(cand, sel, sim)[0] == 2


# --- a literal, per-prompt reading of SPEC §4, for comparison on data the tests did not hand-build ---

def reference(cands, sup, sim, strategy, tau, rw=0.5, sw=0.5):
    out = []
    for row in cands:
        slots = [k for k, m in enumerate(row) if m >= 0]
        best = None
        for j, k in itertools.combinations(slots, 2):
            a, b = row[j], row[k]
            if a == b or sim[a, b] < tau:
                continue
            if sup[a] > sup[b] or (sup[a] == sup[b] and a <= b):
                c, r, cs, rs = a, b, j, k
            else:
                c, r, cs, rs = b, a, k, j
            value = {"sup": sup[c] + sup[r], "sim": sim[c, r], "sim_least": -sim[c, r],
                     "sup_sim": rw * (sup[c] + sup[r]) / 2 + sw * sim[c, r]}[strategy]
            key = (value, sup[c], sup[r])
            if best is None or key > best[0]:  # strict: the earliest pair keeps a full tie
                best = (key, cs, rs)
        out.append((best[1], best[2]) if best else (-1, -1))
    return out


def random_problem(seed, n=400, models=9, k=4):
    rng = np.random.default_rng(seed)
    v = rng.random((models, 5))
    v[rng.integers(models)] = v[0]  # an exact duplicate behaviour vector: ties in MB-SUP and MB-SIM
    sup = v.mean(axis=1)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    sim = unit @ unit.T
    cand = np.stack([rng.choice(models, size=k, replace=False) for _ in range(n)])
    cand[rng.random((n, k)) < 0.2] = -1
    return cand, sup, sim


@pytest.mark.parametrize("strategy", ["sup", "sim", "sim_least", "sup_sim"])
@pytest.mark.parametrize("tau", [0.0, 0.85])
def test_vectorised_agrees_with_per_prompt_reading(strategy, tau):
    cand, sup, sim = random_problem(seed=7)
    sel = select(cand, sup, sim, strategy, tau=tau)
    got = list(zip(sel.chosen.tolist(), sel.rejected.tolist()))
    assert got == reference(cand, sup, sim, strategy, tau)


@pytest.mark.parametrize("seed", range(5))
def test_combined_limits_are_sup_and_sim(seed):
    cand, sup, sim = random_problem(seed)
    for tau in (0.0, 0.8):
        s = select(cand, sup, sim, "sup", tau=tau)
        q = select(cand, sup, sim, "sup_sim", tau=tau, rank_weight=1.0, similarity_weight=0.0)
        np.testing.assert_array_equal(s.chosen, q.chosen)
        np.testing.assert_array_equal(s.rejected, q.rejected)
        s = select(cand, sup, sim, "sim", tau=tau)
        q = select(cand, sup, sim, "sup_sim", tau=tau, rank_weight=0.0, similarity_weight=3.0)
        np.testing.assert_array_equal(s.chosen, q.chosen)
        np.testing.assert_array_equal(s.rejected, q.rejected)


def test_chosen_always_has_higher_or_equal_sup():
    cand, sup, sim = random_problem(3)
    for strategy in ("sup", "sim", "sim_least", "sup_sim"):
        sel = select(cand, sup, sim, strategy, tau=0.0)
        assert (sup[sel.chosen_model[sel.ok]] >= sup[sel.rejected_model[sel.ok]]).all()
        assert (sel.chosen[sel.ok] != sel.rejected[sel.ok]).all()


# --- the RLAIF baseline ---

def test_baseline_chooses_top_score_and_a_strictly_lower_one():
    scores = np.array([[7.0, 9.0, 9.0, 3.0], [5.0, 5.0, 5.0, 5.0], [8.0, np.nan, 2.0, np.nan], [6.0, 1.0, np.nan, np.nan]])
    usable = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0], [0, 1, 1, 1]], dtype=bool)
    keys = np.random.default_rng(1).random((4, 4))  # the draw's keys (zebra.data.Batch.draw_keys in a run)
    sel = select_baseline(scores, usable, keys)
    assert sel.chosen[0] == (1 if keys[0, 1] > keys[0, 2] else 2)  # ties at the top: the draw's largest key
    assert sel.rejected[0] == (0 if keys[0, 0] > keys[0, 3] else 3)
    assert not sel.ok[1] and sel.all_equal[1]
    assert (sel.chosen[2], sel.rejected[2]) == (0, 2)
    assert not sel.ok[3] and sel.too_few[3]  # only slot 1 is usable and scored


def test_baseline_draw_is_seeded_uniform_and_never_self():
    n = 20000
    scores = np.tile([9.0, 1.0, 2.0, 3.0], (n, 1))
    usable = np.ones((n, 4), dtype=bool)
    keys = lambda seed: np.random.default_rng(seed).random((n, 4))  # noqa: E731
    a = select_baseline(scores, usable, keys(42))
    b = select_baseline(scores, usable, keys(42))
    c = select_baseline(scores, usable, keys(43))
    np.testing.assert_array_equal(a.rejected, b.rejected)
    assert (a.rejected != c.rejected).any()
    assert (a.chosen == 0).all() and (a.rejected != 0).all()
    share = np.bincount(a.rejected, minlength=4)[1:] / n
    np.testing.assert_allclose(share, 1 / 3, atol=0.02)


def test_baseline_ties_at_the_top_are_drawn_not_taken_by_position():
    """Two responses share the top score: the one with the larger key is chosen, wherever it is
    listed (the keys come from seed, prompt and model: zebra.data.Batch.draw_keys)."""
    scores = np.array([[9.0, 3.0, 9.0], [9.0, 9.0, 3.0]])
    keys = np.array([[0.2, 0.5, 0.7], [0.7, 0.2, 0.5]])  # row 2 is row 1 with its slots moved
    sel = select_baseline(scores, np.ones((2, 3), dtype=bool), keys)
    assert (sel.chosen.tolist(), sel.rejected.tolist()) == ([2, 0], [1, 2])
    assert keys[0, 2] == keys[1, 0] and keys[0, 1] == keys[1, 2]  # the same responses chosen and rejected


def test_equal_objective_goes_to_table_order_not_to_the_slots():
    """Models 0 and 1 behave alike (equal MB-SUP, MB-SIM); each pair with model 2 ties on every
    measure: the pair of the model listed first in the table is taken, in any slot order."""
    sup = np.array([0.5, 0.5, 0.4])
    sim = np.array([[1.0, 1.0, 0.3], [1.0, 1.0, 0.3], [0.3, 0.3, 1.0]])
    for cand in ([0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]):
        sel = select(np.array([cand]), sup, sim, "sim_least", tau=0.0)
        assert (sel.chosen_model[0], sel.rejected_model[0]) == (0, 2)
        assert cand[sel.chosen[0]] == 0 and cand[sel.rejected[0]] == 2


def test_a_model_listed_twice_is_never_paired_with_itself():
    """zebra.data.usable_slots leaves each model once per prompt; select() holds on its own too."""
    for strategy in ("sup", "sim", "sim_least", "sup_sim"):
        sel = select(np.array([[A, A, -1, -1], [B, D, B, -1]]), SUP, SIM, strategy, tau=0.0)
        assert not sel.ok[0] and sel.too_few[0]
        assert {int(sel.chosen_model[1]), int(sel.rejected_model[1])} == {B, D}


def test_equal_objective_goes_to_the_higher_chosen_then_rejected_mb_sup():
    """Two pairs tie on the objective: the one whose chosen model has the higher MB-SUP is taken
    (not the one whose rejected model has: the documented order of the tie-breaks)."""
    sup = np.array([0.875, 0.5, 0.75, 0.625])  # exact in binary: 0.875 + 0.5 == 0.75 + 0.625
    sim = np.full((4, 4), 0.2)
    np.fill_diagonal(sim, 1.0)
    sim[0, 1] = sim[1, 0] = sim[2, 3] = sim[3, 2] = 0.6
    for cand in ([2, 3, 0, 1], [0, 1, 2, 3]):
        for strategy in ("sup", "sim", "sup_sim"):
            sel = select(np.array([cand]), sup, sim, strategy, tau=0.5)
            assert (int(sel.chosen_model[0]), int(sel.rejected_model[0])) == (0, 1), (strategy, cand)
