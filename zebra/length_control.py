"""Length-controlled agreement: what a judge's agreement with each strategy would be if the two
responses of every pair were equally long.

After AlpacaEval 2's length-controlled win rate (Dubois et al. 2024, arXiv:2404.04475;
`alpaca_eval/metrics/glm_winrate.py`, `get_length_controlled_winrate`). AlpacaEval fits, per
model, a logistic GLM of the judge's preference on `tanh(std_delta_len)` (the length difference
in characters over its standard deviation), an instruction-difficulty term and a model term,
without intercept, L1-penalised (liblinear) with the penalty chosen by 5-fold cross-validation
grouped so an annotation never straddles folds; the controlled win rate is the mean prediction
with the length difference set to 0. Here:

    P(judge agrees with the chosen side) = σ( λ·tanh(Δ/σ_Δ) + β_strategy [+ γ·MB-SUP gap] )

- Δ = characters of chosen − rejected, σ_Δ its standard deviation over the fitted pairs;
- β_strategy: one term per strategy (AlpacaEval's model term), so all strategies share one length
  slope λ and the study's decided pairs are fitted together;
- the MB-SUP gap term is optional (`gap_term`): with it, the strategy terms say what a strategy
  adds beyond the gap it picks;
- no instruction-difficulty term: AlpacaEval estimates it from its whole leaderboard, which is not
  at hand; the prompts enter through the cross-validation instead, whose folds are grouped by
  prompt (GroupKFold, 5 folds) so one prompt's pairs never sit on both sides of a split;
- L1, liblinear, no intercept, the penalty C chosen from 10 values (scikit-learn's Cs=10 grid) by
  the folds' log-loss, as AlpacaEval;
- the length-controlled agreement of a strategy is the mean over its pairs of the prediction at
  Δ = 0; its interval is the analyses' one method (zebra.analysis.bootstrap_ci's percentile
  bootstrap over prompts), each resample refitted at the chosen C with σ_Δ held fixed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from zebra.analysis import resample_groups

log = logging.getLogger(__name__)

N_SPLITS = 5  # AlpacaEval's folds
CS = 10  # size of the penalty grid (scikit-learn's default logspace(-4, 4, 10)), as AlpacaEval
SOLVER_SEED = 123  # AlpacaEval's random_state
MIN_PAIRS = 20  # below this a fit says nothing; the study reports NaN and says why
MAX_ITER = 1000  # liblinear's default 100 stops short at the grid's weakest penalties on small samples
LENGTH = "tanh(delta_chars / sigma)"
GAP = "mb_sup_gap"


@dataclass(frozen=True)
class LengthControlFit:
    strategies: tuple[str, ...]
    sigma: float  # standard deviation of Δ characters over the fitted pairs
    C: float  # the penalty the grouped cross-validation chose
    coef: dict[str, float]  # LENGTH, f"strategy[{s}]", and GAP when gap_term
    gap_term: bool
    pairs: int
    prompts: int

    def as_dict(self) -> dict:
        return {"strategies": list(self.strategies), "sigma_chars": self.sigma, "C": self.C, "coef": self.coef,
                "gap_term": self.gap_term, "pairs": self.pairs, "prompts": self.prompts}


def design(frame: pd.DataFrame, strategies: Sequence[str], sigma: float, gap_term: bool,
           equal_length: bool = False) -> np.ndarray:
    """Columns: tanh(Δ/σ) (0 at equal length), one indicator per strategy, the MB-SUP gap."""
    delta = frame["chosen_chars"].to_numpy(float) - frame["rejected_chars"].to_numpy(float)
    length = np.zeros(len(frame)) if equal_length else np.tanh(delta / sigma)
    onehot = (frame["strategy"].to_numpy()[:, None] == np.asarray(strategies, dtype=object)[None, :]).astype(float)
    cols = [length[:, None], onehot]
    if gap_term:
        cols.append(np.nan_to_num(frame["mb_sup_gap"].to_numpy(float))[:, None])
    return np.hstack(cols)


def _model(C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", fit_intercept=False, random_state=SOLVER_SEED,
                              max_iter=MAX_ITER)


def fit_length_control(frame: pd.DataFrame, strategies: Sequence[str] | None = None, gap_term: bool = False,
                       n_splits: int = N_SPLITS) -> LengthControlFit | None:
    """Fit the GLM on decided pairs: columns strategy, prompt_id, chosen_chars, rejected_chars,
    agree (1 = the judge prefers the chosen side) and, with `gap_term`, mb_sup_gap. None (and a
    log line) when there is too little to fit: under MIN_PAIRS pairs, fewer prompts than folds,
    or one outcome only."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold

    strategies = tuple(dict.fromkeys(frame["strategy"])) if strategies is None else tuple(strategies)
    y = frame["agree"].to_numpy(int)
    prompts = frame["prompt_id"].to_numpy(dtype=object)
    n_prompts = len(set(prompts))
    delta = frame["chosen_chars"].to_numpy(float) - frame["rejected_chars"].to_numpy(float)
    sigma = float(delta.std())
    if len(frame) < MIN_PAIRS or n_prompts < n_splits or len(set(y)) < 2 or not sigma > 0:
        log.info("length control: not fitted (%d pairs, %d prompts, outcomes %s, σ %.3g)", len(frame), n_prompts,
                 sorted(set(y.tolist())), sigma)
        return None
    x = design(frame, strategies, sigma, gap_term)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    folds = list(GroupKFold(n_splits=n_splits).split(x, y, prompts))
    if any(len(set(y[train])) < 2 for train, _ in folds):  # e.g. 3 disagreements in 60 pairs, all in one fold
        log.info("length control: not fitted (a cross-validation fold trains on one outcome only; %d pairs)", len(frame))
        return None
    with warnings.catch_warnings(record=True) as caught:
        # the grid's weakest penalties (C up to 1e4) on a small, nearly separable sample may stop short;
        # their folds' log-loss is poor and the cross-validation passes them over
        warnings.simplefilter("always", ConvergenceWarning)
        cv = LogisticRegressionCV(Cs=CS, l1_ratios=(1.0,), solver="liblinear", fit_intercept=False, cv=folds,
                                  scoring="neg_log_loss", random_state=SOLVER_SEED, max_iter=MAX_ITER,
                                  use_legacy_attributes=False).fit(x, y)
    stopped = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:  # any other warning is passed on as it came
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if stopped:
        log.info("length control: %d of the cross-validation's %d fits stopped at %d iterations", stopped,
                 CS * n_splits + 1, MAX_ITER)
    names = [LENGTH, *(f"strategy[{s}]" for s in strategies), *([GAP] if gap_term else [])]
    return LengthControlFit(strategies, sigma, float(cv.C_), dict(zip(names, cv.coef_[0].tolist())), gap_term,
                            len(frame), n_prompts)


def _predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ coef)))


def per_strategy(p: np.ndarray, strategy: np.ndarray, strategies: Sequence[str], weights: np.ndarray | None = None) -> np.ndarray:
    w = np.ones_like(p) if weights is None else weights
    out = []
    for s in strategies:
        m = strategy == s
        out.append((p[m] * w[m]).sum() / w[m].sum() if w[m].sum() > 0 else np.nan)
    return np.array(out)


def length_controlled(frame: pd.DataFrame, strategies: Sequence[str], n_boot: int = 2000, seed: int = 0,
                      ) -> tuple[pd.DataFrame, dict]:
    """Per strategy: raw agreement, length-controlled agreement (prediction at Δ = 0) with its
    bootstrap interval, and the same with the MB-SUP gap term; and the two fits, as a dict.

    `frame`: decided pairs with strategy, prompt_id, outcome ('agree'/'disagree'), chosen_chars,
    rejected_chars, mb_sup_gap.
    """
    frame = frame.assign(agree=(frame["outcome"] == "agree").astype(int)).reset_index(drop=True)
    strategies = [s for s in strategies if (frame["strategy"] == s).any()]
    fits = {name: fit_length_control(frame, strategies, gap) for name, gap in (("length", False), ("length+gap", True))}
    strategy = frame["strategy"].to_numpy(dtype=object)
    rows = pd.DataFrame({"strategy": strategies,
                         "pairs": [int((strategy == s).sum()) for s in strategies],
                         "raw_agreement": [frame.loc[strategy == s, "agree"].mean() for s in strategies]})
    for name, col in (("length", "lc_agreement"), ("length+gap", "lc_gap_agreement")):
        fit = fits[name]
        if fit is None:
            rows[col] = np.nan
            continue
        coef = np.array(list(fit.coef.values()))
        rows[col] = per_strategy(_predict(coef, design(frame, strategies, fit.sigma, fit.gap_term, True)), strategy, strategies)
    rows["lc_ci_low"], rows["lc_ci_high"] = np.nan, np.nan
    fit = fits["length"]
    if fit is not None and n_boot > 0:
        lo, hi = bootstrap_length_control(frame, fit, n_boot, seed)
        rows["lc_ci_low"], rows["lc_ci_high"] = lo, hi
    glm = {name: (fit.as_dict() if fit else None) for name, fit in fits.items()}
    glm["method"] = ("AlpacaEval 2 length control: logistic GLM, L1 (liblinear), no intercept, C by 5-fold "
                     "GroupKFold over prompts (Cs=10, log-loss); prediction at delta_chars = 0")
    return rows, glm


def bootstrap_length_control(frame: pd.DataFrame, fit: LengthControlFit, n_boot: int, seed: int,
                             level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each strategy's length-controlled agreement, resampling prompts
    (zebra.analysis.resample_groups; the prompts in id order, so the file's order does not
    matter), refitting at the chosen C with σ_Δ fixed: a resample's prompt drawn m times weighs m."""
    codes, uniques = pd.factorize(frame["prompt_id"].to_numpy(dtype=object), sort=True)
    y = frame["agree"].to_numpy(int)
    x = design(frame, fit.strategies, fit.sigma, fit.gap_term)
    x0 = design(frame, fit.strategies, fit.sigma, fit.gap_term, equal_length=True)
    strategy = frame["strategy"].to_numpy(dtype=object)
    from sklearn import config_context

    stats = []
    model = _model(fit.C)
    # the inputs are checked once above; skipping sklearn's per-call checks halves a refit's cost
    with config_context(skip_parameter_validation=True, assume_finite=True):
        for idx in resample_groups(len(uniques), n_boot, seed):
            for row in idx:
                w = np.bincount(row, minlength=len(uniques))[codes].astype(float)
                if len(set(y[w > 0])) < 2:
                    stats.append(np.full(len(fit.strategies), np.nan))
                    continue
                coef = model.fit(x, y, sample_weight=w).coef_[0]
                stats.append(per_strategy(_predict(coef, x0), strategy, fit.strategies, w))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(np.array(stats), [alpha, 1.0 - alpha], axis=0)
    return lo, hi
