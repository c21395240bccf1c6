r"""The per-row reference: ZEBRA's constructors computed the way the original scripts work.

    # one constructor on the shipped sample, writing a JSON list like the original
    python -m benchmarks.reference_iterrows --strategy sup --output out/ref_sup.json

    # on a full-size synthetic file (see make_ultrafeedback.py), as benchmarks/binarize_speed.py runs it
    python -m benchmarks.reference_iterrows --strategy baseline --data out/bench/uf_63967.jsonl --output out/ref_baseline.json

The original code (github Jeesu-Jung/ZEBRA, SPEC §5) loads UltraFeedback with `datasets`,
turns the whole split into a pandas DataFrame, walks it with `DataFrame.iterrows()`, decides
each prompt in a Python loop, and rewrites its whole output with
`to_json(orient="records", indent=4)` every 10,000 rows. This module keeps that shape — the
cost structure the speed benchmark compares against — but with the selection semantics of
`zebra.strategies` (τ, tie-breaks, responses taken by their own `model` field, the same
usability and duplicate rules), so that it writes the same pairs as the fast path
(tests/test_speed_benchmark.py checks this for every constructor). It is a yardstick, not a
second implementation to maintain: nothing else imports it.

The reliability columns (`agreement`, `entropy`, `weight`) are not written: the pairs, the
texts and the provenance columns are what is compared.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

STRATEGY = "sup"  # sup | sim | sim_least | sup_sim | baseline
BEHAVIOUR_TABLE = "model_aware/benchmark.csv"
TAU = 0.1  # as zebra.strategies: admit a pair only if MB-SIM >= tau
RANK_WEIGHT = 0.5
SIMILARITY_WEIGHT = 0.5
SEED = 42  # baseline's random draws (zebra.data.Batch.draw_keys: sha256 of seed, prompt, model)
SCORE = "overall"  # baseline: overall | mean-rating
DROP_SOURCES = ("truthful_qa",)  # baseline only, as binarize_baseline.py
SAVE_EVERY = 10_000  # the original rewrites its whole output this often (quadratic on purpose)

_ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")  # the same test as zebra.data.Batch.ratings


def _usable_slots(completions, rated: dict[str, int] | None, prefer) -> list[int]:
    """Slots that may enter a pair, with zebra.data.usable_slots' order-free rules: a model name, a
    non-blank response, a rated model (if `rated`); a model answering twice with different texts
    gives nothing, identical copies are one; a text several models give is kept once, for the
    copy with the largest `prefer(slot)` key."""
    slots = [s for s, c in enumerate(completions) if c.get("model") is not None
             and c.get("response") is not None and c["response"].strip()
             and (rated is None or c["model"] in rated)]
    by_model: dict[str, list[int]] = {}
    for s in slots:
        by_model.setdefault(completions[s]["model"], []).append(s)
    kept = []
    for model, group in by_model.items():
        if len({completions[s]["response"] for s in group}) == 1:
            kept.append(max(group, key=prefer))
    by_text: dict[str, list[int]] = {}
    for s in kept:
        by_text.setdefault(completions[s]["response"], []).append(s)
    return sorted(max(group, key=prefer) for group in by_text.values())


def _pick_zebra(slots: list[int], midx: list[int], mb_sup: list[float], mb_sim: list[list[float]],
                strategy: str, tau: float, rank_weight: float, similarity_weight: float):
    """(chosen slot, rejected slot) of the best admissible pair, or None; loops over pairs."""
    best, best_key = None, None
    for a in range(len(slots)):
        for b in range(a + 1, len(slots)):
            i, j = midx[a], midx[b]
            if i == j:
                continue
            # chosen = higher MB-SUP; equal MB-SUP goes to the model listed first in the table
            if mb_sup[i] > mb_sup[j] or (mb_sup[i] == mb_sup[j] and i <= j):
                c, r, cs, rs = i, j, slots[a], slots[b]
            else:
                c, r, cs, rs = j, i, slots[b], slots[a]
            sim = mb_sim[c][r]
            if sim < tau:
                continue
            if strategy == "sup":
                score = mb_sup[c] + mb_sup[r]
            elif strategy == "sim":
                score = sim
            elif strategy == "sim_least":
                score = -sim
            else:
                score = rank_weight * (mb_sup[c] + mb_sup[r]) / 2.0 + similarity_weight * sim
            key = (score, mb_sup[c], mb_sup[r], -c, -r)  # then the models' table order, never the slots'
            if best_key is None or key > best_key:
                best, best_key = (cs, rs, c, r), key
    return best


class _Reversed(str):
    """A name that sorts backwards: of two equally preferred copies the smaller model name wins."""

    def __lt__(self, other):
        return str.__gt__(self, other)

    def __gt__(self, other):
        return str.__lt__(self, other)


def _score(comp: dict, how: str) -> float:
    if how == "overall":
        value = comp.get("overall_score")
        return math.nan if value is None else float(value)
    ratings = []
    for aspect in _ASPECTS:
        rating = ((comp.get("annotations") or {}).get(aspect) or {}).get("Rating")
        if rating is not None and _NUMBER.match(str(rating)):
            ratings.append(float(rating))
    return sum(ratings) / len(ratings) if ratings else math.nan


def _clean(value):
    """NaN and negative ranks become null, as in zebra.pipeline.build_records."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, int):
        return None if value < 0 else value
    return value


def reference_binarize(data: str | None, output: str, strategy: str = STRATEGY, benchmark: str = BEHAVIOUR_TABLE,
                       tau: float = TAU, rank_weight: float = RANK_WEIGHT, similarity_weight: float = SIMILARITY_WEIGHT,
                       seed: int = SEED, score: str = SCORE, drop_sources: tuple[str, ...] = DROP_SOURCES,
                       only_rated: bool = False, limit: int | None = None,
                       save_every: int = SAVE_EVERY) -> dict[str, Any]:
    """Run one constructor row by row; returns counts and per-stage seconds."""
    import pandas as pd

    from zebra.behaviour import read_benchmark
    from zebra.data import load_ultrafeedback
    from zebra.pools import draw_keys

    t0 = time.perf_counter()
    table = read_benchmark(benchmark)
    mb_sup, mb_sim = table.mb_sup.tolist(), table.mb_sim.tolist()
    index = dict(table.index)
    ds = load_ultrafeedback(data, limit=limit)
    df = ds.to_pandas()  # the original's step: the whole split as Python objects
    t_load = time.perf_counter() - t0

    records: list[dict[str, Any]] = []
    t_write = 0.0
    baseline = strategy == "baseline"
    drop = set(drop_sources) if baseline else set()
    for n, (_, row) in enumerate(df.iterrows(), start=1):
        prompt = row["instruction"]
        completions = list(row["completions"])
        if not (baseline and row.get("source") in drop):
            if baseline:  # the seeded draw: a key per (seed, prompt, model)
                key = {s: draw_keys(seed, np.array([prompt], dtype=object), np.array([c.get("model")], dtype=object))[0]
                       for s, c in enumerate(completions)}

                def prefer(s):  # the best-scored copy, then the draw's
                    value = _score(completions[s], score)
                    return (-math.inf if math.isnan(value) else value, key[s], _Reversed(completions[s]["model"]))
            else:
                def prefer(s):  # the best-ranked model's copy: MB-SUP, then table order
                    m = index[completions[s]["model"]]
                    return (mb_sup[m], -m)
            slots = _usable_slots(completions, index if (not baseline or only_rated) else None, prefer)
            names = [completions[s]["model"] for s in slots]
            rec = None
            if baseline:
                scored = [(s, _score(completions[s], score)) for s in slots]
                scored = [(s, v) for s, v in scored if not math.isnan(v)]
                if scored:
                    top = max(v for _, v in scored)
                    chosen = max((s for s, v in scored if v == top), key=lambda s: key[s])
                    lower = [s for s, v in scored if v < top]
                    if lower:
                        rejected = max(lower, key=lambda s: key[s])
                        c = index.get(completions[chosen]["model"], -1)
                        r = index.get(completions[rejected]["model"], -1)
                        rec = (chosen, rejected, c, r, None,
                               {"score_chosen": _score(completions[chosen], score),
                                "score_rejected": _score(completions[rejected], score)})
            else:
                midx = [index[m] for m in names]
                best = _pick_zebra(slots, midx, mb_sup, mb_sim, strategy, tau, rank_weight, similarity_weight)
                if best is not None:
                    chosen, rejected, c, r = best
                    rivals = [index[completions[s]["model"]] for s in slots if s not in (chosen, rejected)]
                    kinship = 1 + sum(mb_sim[c][m] > mb_sim[c][r] for m in rivals)
                    rec = (chosen, rejected, c, r, kinship, {})
            if rec is not None:
                chosen, rejected, c, r, kinship, extra = rec
                records.append({
                    "prompt": prompt,
                    "prompt_id": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
                    "most_similar_pair": [completions[chosen]["model"], completions[rejected]["model"]],
                    "chosen": [{"content": prompt, "role": "user"},
                               {"content": completions[chosen]["response"], "role": "assistant"}],
                    "rejected": [{"content": prompt, "role": "user"},
                                 {"content": completions[rejected]["response"], "role": "assistant"}],
                    "kinship_rank": kinship,
                    "mb_sup_chosen": mb_sup[c] if c >= 0 else None,
                    "mb_sup_rejected": mb_sup[r] if r >= 0 else None,
                    "mb_sim": mb_sim[c][r] if c >= 0 and r >= 0 else None,
                    **{k: _clean(v) for k, v in extra.items()},
                })
        if n % save_every == 0:  # the original's checkpoint: the whole file, again
            t1 = time.perf_counter()
            pd.DataFrame(records).to_json(output, orient="records", indent=4)
            t_write += time.perf_counter() - t1
    t1 = time.perf_counter()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_json(output, orient="records", indent=4)
    t_write += time.perf_counter() - t1
    total = time.perf_counter() - t0
    return {"rows_read": len(df), "rows_written": len(records),
            "seconds": {"load": round(t_load, 3), "select_and_build": round(total - t_load - t_write, 3),
                        "write": round(t_write, 3), "total": round(total, 3)}}


def main() -> None:
    from zebra.cli import renamed

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", default=STRATEGY, choices=("sup", "sim", "sim_least", "sup_sim", "baseline"))
    ap.add_argument("--data", default=None, help="UltraFeedback-schema file or folder (default: shipped sample)")
    ap.add_argument("--output", required=True, help="a .json file (JSON list, indent 4, like the original)")
    ap.add_argument("--behaviour-table", default=BEHAVIOUR_TABLE, help="behaviour table CSV (default: %(default)s)")
    ap.add_argument("--tau", type=float, default=TAU)
    ap.add_argument("--rank-weight", type=float, default=RANK_WEIGHT)
    ap.add_argument("--similarity-weight", type=float, default=SIMILARITY_WEIGHT)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--score", choices=("overall", "mean-rating"), default=SCORE)
    ap.add_argument("--limit", type=int, default=None)
    renamed(ap, "--behaviour-table", "--benchmark")
    args = ap.parse_args()
    out = reference_binarize(args.data, args.output, args.strategy, args.behaviour_table, args.tau, args.rank_weight,
                             args.similarity_weight, args.seed, args.score, limit=args.limit)
    print(f"{args.strategy}: wrote {out['rows_written']} of {out['rows_read']} prompts to {args.output} "
          f"in {out['seconds']['total']:.1f}s")


if __name__ == "__main__":
    main()
