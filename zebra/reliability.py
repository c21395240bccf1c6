"""Reliability from benchmark agreement: the ZEBRA analogue of reliability-aware alignment (SPEC §9).

Seed 003 (Guo et al., "Improving Weak-to-Strong Generalization with Reliability-Aware
Alignment") asks a weak judge the same question several times, reads the answers as votes, and
(1) drops labels whose vote entropy is above the median ("uncertainty filtering",
`our_method_uncertainty_filtering.py`: `scipy.stats.entropy` of the answer frequencies, natural
log, kept when entropy ≤ `np.percentile(entropy, 50)`), (2) weights each kept label by a
softmax of its vote frequency over a temperature T = 0.2 ("reliability reweighting",
`our_method_reweighting.py`: `exp(f_a / T) / Σ_b exp(f_b / T)`, loss = mean(loss · weight)).

ZEBRA has six benchmarks instead of six prompts. For a chosen model c and rejected model r,
benchmark b votes for c when c scores higher on it. A tie is half a vote each: it is no
evidence either way, it keeps a(c, r) + a(r, c) = 1, and a pair that differs on a single
benchmark stays close to a coin flip instead of becoming unanimous (which abstaining would do).

    agreement  a(c, r) = (#{b: x_cb > x_rb} + ½ #{b: x_cb = x_rb}) / B      vote share for chosen
    entropy    H(c, r) = −a ln a − (1 − a) ln(1 − a)                        nats, 0 … ln 2
    weight     w(c, r) = exp(a/T) / (exp(a/T) + exp((1 − a)/T)) = σ((2a − 1)/T)

The softmax runs over the two possible outcomes, "chosen is better" and "rejected is better".
Seed 003 normalises over the answers that were observed, which is the same whenever both
outcomes got votes; at a unanimous 6–0 it gives 1.0 where this gives σ(1/T) = 0.9933, and it
has no value for a label no vote supports (possible for the RLAIF baseline, whose chosen
response comes from GPT-4 scores), where this gives σ(−1/T) = 0.0067.

The entropy is label-free, as in seed 003: a pair all six benchmarks call *against* the label
has entropy 0 and survives the cut; its weight, not the cut, is what discounts it.

The weights are not rescaled to average 1 over a file. A record's weight then depends on its
own model pair only, like every other field, so `--limit` runs, shards and concatenated files
agree record for record; `train_dpo.py --weight-column` computes Σ w·l / Σ w, which does not see
a common scale; and seed 003 trains on the raw softmax too. The meta file reports the mean
weight of the written pairs (`mean_weight_of_kept_rated_pairs`): divide by it for a mean-1 column.

Every quantity depends on the (chosen, rejected) model pair only, and is computed for the pairs a
run selects from the two models' raw scores: never an M×M matrix, whose size a large table (10,000
models: 800 MB a matrix) would make the run's cost.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from zebra.errors import ZebraError

TEMPERATURE = 0.2  # seed 003's value (`get_answer_score(..., temperature=0.2)`)


def benchmark_agreement(raw: np.ndarray) -> np.ndarray:
    """(M, M) share of benchmark votes for row model i over column model j; ties split ½–½."""
    raw = np.asarray(raw, dtype=float)
    wins = (raw[:, None, :] > raw[None, :, :]).sum(axis=-1)
    ties = (raw[:, None, :] == raw[None, :, :]).sum(axis=-1)
    return (wins + 0.5 * ties) / raw.shape[1]


def agreement_entropy(agreement: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the two-outcome vote distribution (a, 1 − a); NaN stays NaN."""
    a = np.asarray(agreement, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        # 0 · ln 0 = 0, as scipy.stats.entropy has it
        terms = np.where(a > 0, -a * np.log(np.where(a > 0, a, 1.0)), 0.0) + np.where(
            a < 1, -(1 - a) * np.log(np.where(a < 1, 1 - a, 1.0)), 0.0
        )
    return np.where(np.isnan(a), np.nan, terms)


def reliability_weight(agreement: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """Softmax over {chosen better, rejected better} of vote share / T, at "chosen better"."""
    if not temperature > 0:
        raise ZebraError(f"--reliability-temperature must be > 0, not {temperature}")
    a = np.asarray(agreement, dtype=float)
    # σ((2a − 1)/T) is the two-way softmax written so that it cannot overflow
    return 0.5 * (1.0 + np.tanh((2.0 * a - 1.0) / (2.0 * temperature)))


def check_settings(max_entropy: float | None, entropy_quantile: float | None, temperature: float) -> None:
    """Fail early, with the flag's name, on settings the cut or the weights cannot use."""
    if max_entropy is not None and entropy_quantile is not None:
        raise ZebraError("give --max-entropy or --entropy-quantile, not both")
    if max_entropy is not None and not max_entropy >= 0:
        raise ZebraError(f"--max-entropy must be >= 0 (entropies lie in 0 … ln 2 = 0.693), not {max_entropy}")
    if entropy_quantile is not None and not 0 < entropy_quantile <= 1:
        raise ZebraError(f"--entropy-quantile must lie in (0, 1] (seed 003 keeps <= the median: 0.5), not {entropy_quantile}")
    if not temperature > 0:
        raise ZebraError(f"--reliability-temperature must be > 0, not {temperature}")


def weighted_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """`np.percentile(np.repeat(values, counts), 100 q)` (linear method), without the repeat.

    Memory stays O(distinct values) however many records carry them.
    """
    values, counts = np.asarray(values, float).ravel(), np.asarray(counts, np.int64).ravel()
    keep = counts > 0
    values, counts = values[keep], counts[keep]
    if values.size == 0:
        raise ZebraError("no rated pairs to take an entropy quantile of")
    order = np.argsort(values, kind="stable")
    values, ends = values[order], np.cumsum(counts[order])
    h = q * (ends[-1] - 1)
    lo, hi = int(np.floor(h)), int(np.ceil(h))
    # the k-th order statistic (0-based) is the first value whose cumulative count exceeds k
    v_lo, v_hi = values[np.searchsorted(ends, lo, side="right")], values[np.searchsorted(ends, hi, side="right")]
    return float(v_lo + (h - lo) * (v_hi - v_lo))


@dataclass
class PairReliability:
    """Per ordered model pair (chosen, rejected): agreement, entropy and weight, from the raw scores.

    Computed for the pairs a run selects, never as M×M matrices (a 10,000-model table would need
    800 MB for each); `agreement`, `entropy` and `weight` give the full matrices for small tables.
    `observe` counts the pairs a run selects; `resolved` fixes the run's entropy cut from
    --max-entropy, or from --entropy-quantile over the pairs observed in a first pass.
    """

    raw: np.ndarray  # (M, B) the behaviour table's raw scores
    temperature: float = TEMPERATURE
    max_entropy: float | None = None  # the resolved cut; None keeps every pair
    entropy_quantile: float | None = None  # what the cut was resolved from, if a quantile
    pair_counts: Counter = field(default_factory=Counter, repr=False)  # (chosen, rejected) -> pairs seen by observe()
    unrated: int = 0  # pairs seen with a side outside the behaviour table (baseline only)

    @classmethod
    def from_raw(cls, raw: np.ndarray, temperature: float = TEMPERATURE) -> "PairReliability":
        reliability_weight(np.zeros(1), temperature)  # a bad temperature fails here, before any pair
        return cls(np.asarray(raw, dtype=float), temperature)

    @property
    def agreement(self) -> np.ndarray:
        """(M, M) for a small table; `of` gives the numbers of given pairs."""
        return benchmark_agreement(self.raw)

    @property
    def entropy(self) -> np.ndarray:
        return agreement_entropy(self.agreement)

    @property
    def weight(self) -> np.ndarray:
        return reliability_weight(self.agreement, self.temperature)

    def of(self, c_model: np.ndarray, r_model: np.ndarray) -> dict[str, np.ndarray]:
        """agreement, entropy, weight of each (c_model[i], r_model[i]) (indices ≥ 0): the matrices'
        numbers, entry for entry (integer vote counts, then the same elementwise formulas)."""
        c, r = self.raw[c_model], self.raw[r_model]
        a = ((c > r).sum(axis=-1) + 0.5 * (c == r).sum(axis=-1)) / self.raw.shape[1]
        return {"agreement": a, "entropy": agreement_entropy(a), "weight": reliability_weight(a, self.temperature)}

    def observe(self, c_model: np.ndarray, r_model: np.ndarray) -> None:
        """Count selected pairs (−1 on either side: a model outside the table, counted apart)."""
        rated = (c_model >= 0) & (r_model >= 0)
        self.pair_counts.update(zip(c_model[rated].tolist(), r_model[rated].tolist()))
        self.unrated += int((~rated).sum())

    def _observed(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The observed pairs in (chosen, rejected) order, their counts and their numbers."""
        pairs = sorted(self.pair_counts)
        c = np.array([p[0] for p in pairs], dtype=np.int64)
        r = np.array([p[1] for p in pairs], dtype=np.int64)
        return c, np.array([self.pair_counts[p] for p in pairs], dtype=np.int64), self.of(c, r) if pairs else {
            k: np.zeros(0) for k in ("agreement", "entropy", "weight")}

    def keep(self, c_model: np.ndarray, r_model: np.ndarray) -> np.ndarray:
        """Which pairs pass the entropy cut; a pair without votes passes only when there is none."""
        rated = (c_model >= 0) & (r_model >= 0)
        if self.max_entropy is None:
            return np.ones(c_model.shape, dtype=bool)
        h = self.of(np.where(rated, c_model, 0), np.where(rated, r_model, 0))["entropy"]
        return rated & (h <= self.max_entropy)

    def columns(self, c_model: np.ndarray, r_model: np.ndarray) -> dict[str, np.ndarray]:
        """`agreement`, `entropy` (NaN without votes) and `weight` (1, i.e. untouched, without votes)."""
        rated = (c_model >= 0) & (r_model >= 0)
        got = self.of(np.where(rated, c_model, 0), np.where(rated, r_model, 0))
        return {
            "agreement": np.where(rated, got["agreement"], np.nan),
            "entropy": np.where(rated, got["entropy"], np.nan),
            "weight": np.where(rated, got["weight"], 1.0),
        }

    def resolved(self, max_entropy: float | None = None, entropy_quantile: float | None = None) -> "PairReliability":
        """A copy with the entropy cut fixed (a quantile: of the pairs observed so far), counts reset."""
        check_settings(max_entropy, entropy_quantile, self.temperature)
        cut = max_entropy
        if entropy_quantile is not None:
            _, counts, got = self._observed()
            cut = weighted_quantile(got["entropy"], counts, entropy_quantile) if counts.size else None
        return replace(self, max_entropy=cut, entropy_quantile=entropy_quantile, pair_counts=Counter(), unrated=0)

    def summary(self) -> dict[str, Any]:
        """For the run's meta file: settings, the entropy histogram of the pairs before the cut."""
        _, counts, got = self._observed()
        kept = counts * ((got["entropy"] <= self.max_entropy) if self.max_entropy is not None else 1)
        levels = np.round(got["entropy"], 4)
        hist = {f"{h:.4f}": int(counts[levels == h].sum()) for h in np.unique(levels)}
        n = int(counts.sum())
        # sums over the observed pairs, exactly rounded (math.fsum): no order of summation shows
        return {
            "temperature": self.temperature,
            "ties": "half a vote each",
            "entropy_quantile": self.entropy_quantile,
            "max_entropy": self.max_entropy,
            "mean_weight_of_kept_rated_pairs": math.fsum(kept * got["weight"]) / kept.sum() if kept.any() else None,
            "rated_pairs": n,
            "rated_pairs_kept": int(kept.sum()),
            "pairs_without_votes": self.unrated,
            "entropy_histogram": hist,
            "mean_agreement": math.fsum(counts * got["agreement"]) / n if n else None,
        }
