"""The preference constructors (paper §3.5–3.6), vectorised over prompts.

Every function takes `cand`, an (n, K) int array: for each prompt and completion slot, the
index of the response's model in the behaviour table, or −1 where the slot has no usable
response. All pairs of slots are scored at once, (n, K·(K−1)/2) arrays, so the cost per
prompt is a few numpy operations, whatever the number of prompts.

A pair (i, j) is admissible when MB-SIM(i, j) ≥ τ (paper §3.6, τ = 0.1). Inside a pair the
chosen response is the one whose model has the higher MB-SUP (paper's Pref); equal MB-SUP goes
to the model listed first in the behaviour table. A model appears at most once per prompt
(zebra.data.usable_slots), so a pair of models names a pair of responses.

Strategies, each "the admissible pair that maximises":
    SUP      MB-SUP(i) + MB-SUP(j)                 — the top-1 and top-2 models when τ
                                                      removes neither (paper "Aq")
    SIM      MB-SIM(i, j)   (`least`: −MB-SIM)     — paper "As"
    SUP+SIM  rank_weight · (MB-SUP(i) + MB-SUP(j)) / 2 + similarity_weight · MB-SIM(i, j)
             — paper "Aqs"; the paper gives no formula. This one is SUP when
             similarity_weight = 0 and SIM when rank_weight = 0, and both terms live in [0, 1].
Ties on the objective go to the pair whose chosen model has the higher MB-SUP, then whose
rejected model has, then whose chosen model, then rejected model, is listed first in the behaviour
table: never the slots' order, so the pairs depend on the set of responses alone (SPEC §3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zebra.errors import ZebraError

STRATEGIES = ("sup", "sim", "sim_least", "sup_sim")


@dataclass(frozen=True)
class Candidates:
    """One batch of prompts as ZEBRA's strategies see them (what a binarize script's rule gets).

    `models[i, k]`: the behaviour-table index of prompt i's k-th usable response's model, −1
    where slot k holds no usable response; `mb_sup` and `mb_sim` are indexed by those indices.
    """

    models: np.ndarray  # (n, K) int
    mb_sup: np.ndarray  # (M,)
    mb_sim: np.ndarray  # (M, M)


@dataclass(frozen=True)
class Scored:
    """One batch of prompts as the RLAIF baseline sees them: instance scores, not models."""

    scores: np.ndarray  # (n, K) the instance score (--score), NaN where none
    usable: np.ndarray  # (n, K) bool
    keys: np.ndarray  # (n, K) uniforms of the seeded draw, from (seed, prompt, model) alone (zebra.data.Batch.draw_keys)


@dataclass
class Selection:
    """Per prompt: the chosen and rejected slot (−1 where nothing was selected) and why not."""

    chosen: np.ndarray  # (n,) slot index
    rejected: np.ndarray  # (n,) slot index
    chosen_model: np.ndarray  # (n,) behaviour-table index
    rejected_model: np.ndarray  # (n,) behaviour-table index
    ok: np.ndarray  # (n,) bool
    too_few: np.ndarray  # (n,) bool: fewer than two usable responses
    below_tau: np.ndarray  # (n,) bool: usable responses, but no pair with MB-SIM ≥ τ


def oriented_pairs(cand: np.ndarray, mb_sup: np.ndarray):
    """All slot pairs of every prompt, oriented chosen-first by MB-SUP (ties: table order)."""
    k = cand.shape[1]
    first, second = np.triu_indices(k, 1)
    a, b = cand[:, first], cand[:, second]
    valid = (a >= 0) & (b >= 0) & (a != b)
    a0, b0 = np.where(valid, a, 0), np.where(valid, b, 0)
    a_wins = (mb_sup[a0] > mb_sup[b0]) | ((mb_sup[a0] == mb_sup[b0]) & (a0 <= b0))
    c_model = np.where(a_wins, a0, b0)
    r_model = np.where(a_wins, b0, a0)
    c_slot = np.where(a_wins, first, second)
    r_slot = np.where(a_wins, second, first)
    return valid, c_model, r_model, c_slot, r_slot


def objective(strategy: str, sup_c, sup_r, sim, rank_weight: float = 0.5, similarity_weight: float = 0.5):
    """The quantity each strategy maximises over admissible pairs (see module docstring)."""
    if strategy == "sup":
        return sup_c + sup_r
    if strategy == "sim":
        return sim
    if strategy == "sim_least":
        return -sim
    if strategy == "sup_sim":
        return rank_weight * (sup_c + sup_r) / 2.0 + similarity_weight * sim
    raise ZebraError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")


def _lexicographic_argmax(mask: np.ndarray, keys: list[np.ndarray]) -> np.ndarray:
    """Row-wise argmax of the first key, ties broken by the next keys (then the first column:
    callers end with keys that leave no tie)."""
    mask = mask.copy()
    for key in keys:
        masked = np.where(mask, key, -np.inf)
        best = masked.max(axis=1, keepdims=True)
        mask &= masked == best
    return mask.argmax(axis=1)


def select(
    cand: np.ndarray,
    mb_sup: np.ndarray,
    mb_sim: np.ndarray,
    strategy: str,
    tau: float = 0.1,
    rank_weight: float = 0.5,
    similarity_weight: float = 0.5,
) -> Selection:
    """Pick one chosen/rejected pair of slots per prompt with the given strategy."""
    if strategy == "sup_sim" and (rank_weight < 0 or similarity_weight < 0 or rank_weight + similarity_weight == 0):
        raise ZebraError("--rank-weight and --similarity-weight must be ≥ 0 and not both 0")
    n = cand.shape[0]
    valid, c_model, r_model, c_slot, r_slot = oriented_pairs(cand, mb_sup)
    sup_c, sup_r = mb_sup[c_model], mb_sup[r_model]
    sim = mb_sim[c_model, r_model]
    admissible = valid & (sim >= tau)
    score = objective(strategy, sup_c, sup_r, sim, rank_weight, similarity_weight)
    best = _lexicographic_argmax(admissible, [score, sup_c, sup_r, -c_model, -r_model])
    rows = np.arange(n)
    ok = admissible.any(axis=1)
    usable = ((cand >= 0).sum(axis=1) >= 2) & valid.any(axis=1)
    pick = lambda arr: np.where(ok, arr[rows, best], -1)  # noqa: E731
    return Selection(pick(c_slot), pick(r_slot), pick(c_model), pick(r_model), ok, ~usable, usable & ~ok)


def keep_min_mb_sup_gap(mb_sup_chosen, mb_sup_rejected, min_gap: float) -> np.ndarray:
    """The minimum-gap filter (issue 20 §3): keep a pair when MB-SUP(chosen) − MB-SUP(rejected) >=
    `min_gap` (NaN: dropped). The agreement study's calibration curve is why: GPT-4 sides with the
    higher-MB-SUP response less often than a coin when the gap is at most 0.1 (README). 0 keeps every
    pair SUP, SIM and SUP+SIM make (chosen is the higher MB-SUP). A gap within 1e-12 of `min_gap` is
    kept: 0.9 − 0.8 is 0.09999999999999998 in floats, and a user who asks for 0.1 means it."""
    gap = np.asarray(mb_sup_chosen, float) - np.asarray(mb_sup_rejected, float)
    return np.nan_to_num(gap, nan=-np.inf) >= min_gap - 1e-12


def kinship_rank(cand: np.ndarray, sel: Selection, mb_sim: np.ndarray) -> np.ndarray:
    """Rank (1 = closest) of the rejected model among the chosen model's rivals by MB-SIM.

    Rivals are the prompt's other usable responses. Equal similarities share the better rank
    (competition ranking, "1224"). −1 where nothing was selected.
    """
    n, k = cand.shape
    rows = np.arange(n)
    c_model = np.where(sel.ok, sel.chosen_model, 0)
    sim_to_chosen = mb_sim[c_model[:, None], np.where(cand >= 0, cand, 0)]
    sim_rejected = sim_to_chosen[rows, np.where(sel.ok, sel.rejected, 0)]
    slots = np.arange(k)[None, :]
    rivals = (cand >= 0) & (slots != sel.chosen[:, None]) & (slots != sel.rejected[:, None])
    closer = (rivals & (sim_to_chosen > sim_rejected[:, None])).sum(axis=1)
    return np.where(sel.ok, closer + 1, -1)


@dataclass
class BaselineSelection:
    chosen: np.ndarray
    rejected: np.ndarray
    ok: np.ndarray
    too_few: np.ndarray  # fewer than two scored, usable responses
    all_equal: np.ndarray  # every usable response has the same score: no preference to learn


def select_baseline(scores: np.ndarray, usable: np.ndarray, keys: np.ndarray) -> BaselineSelection:
    """The RLAIF baseline: UltraFeedback-binarized's recipe (HuggingFaceH4/ultrafeedback_binarized).

    chosen = the response with the highest instance score; rejected = drawn uniformly from the
    responses scored strictly lower, so a pair is never a tie and never a response against
    itself. Both draws take the largest of `keys` (uniforms from seed, prompt and model alone:
    zebra.data.Batch.draw_keys): among several top-scored responses for the chosen, among the
    lower ones for the rejected, so the pair never depends on where a response is listed.
    Prompts whose usable responses all score the same give no pair.
    """
    usable = usable & ~np.isnan(scores)
    masked = np.where(usable, scores, -np.inf)
    top = masked.max(axis=1)
    chosen = np.where(usable & (masked == top[:, None]), keys, -1.0).argmax(axis=1)
    lower = usable & (masked < top[:, None])
    rejected = np.where(lower, keys, -1.0).argmax(axis=1)
    ok = lower.any(axis=1)
    too_few = usable.sum(axis=1) < 2
    return BaselineSelection(
        np.where(ok, chosen, -1), np.where(ok, rejected, -1), ok, too_few, ~too_few & ~ok
    )
