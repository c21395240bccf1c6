"""Paired significance tests and the paper's result tables (Tables 1, 2 and 5).

Every evaluation run is a folder written by `evaluate.py`: one `<benchmark>.jsonl` with a record
per prompt (`id`, …, `score` in [0, 1]) and a `summary.json` with accuracies, the settings and the
run's identity (`run`: `model`, `method`, `strategy`). This module only reads those folders.

- `paired_tests(a, b)`: B − A over matched prompts — scipy's paired t-test (`ttest_rel`) and a
  paired permutation test (`permutation_test`, `permutation_type="samples"`: each shuffle swaps A
  and B within a random subset of pairs, i.e. flips the sign of their difference), statistic =
  mean difference, two-sided, 10,000 shuffles from a seeded generator (paper Table 2).
- `compare_runs(run_a, run_b)`: those tests per benchmark over the prompts both runs share
  (matched by `id`) and `pooled` over the Table 1 benchmarks.
- `collect_runs` / `table5` / `table1` / `table2`: the paper's tables from any set of runs.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from zebra.errors import ZebraError
from zebra.jsonio import FileAccessError, ReadError, iter_json_records, not_a_folder, read_json

log = logging.getLogger(__name__)

N_PERMUTATIONS = 10_000  # paper Table 2
PERMUTATION_SEED = 0

# Table 1's columns (HellaSwag is in the behaviour table but not in Tables 1/2/5).
TABLE1_BENCHMARKS = ("mmlu_stem", "mmlu_pro", "arc_easy", "arc_challenge", "ifeval")
BENCHMARK_TITLES = {
    "mmlu_stem": "MMLU-STEM",
    "mmlu_pro": "MMLU-Pro",
    "arc_easy": "ARC-Easy",
    "arc_challenge": "ARC-Challenge",
    "ifeval": "IFEval",
    "hellaswag": "HellaSwag",
}
STRATEGY_ORDER = ("baseline", "sup", "sim", "sup_sim")
STRATEGY_TITLES = {"baseline": "Baseline", "sup": "SUP", "sim": "SIM", "sup_sim": "SUP+SIM", "none": "none"}
METHOD_ORDER = ("base", "sft", "dpo")
BASELINE = "baseline"


class RunError(ZebraError):
    """An evaluation folder that cannot be read; the message names the file and what to do."""


@dataclass(frozen=True)
class PairedResult:
    n: int
    t: float | None  # None when the differences have no spread but are not all zero (t = ±inf)
    p_t: float
    mean_delta: float  # mean of B − A
    p_perm: float

    def as_dict(self) -> dict:
        return {"n": self.n, "t": self.t, "p_t": self.p_t, "mean_delta": self.mean_delta, "p_perm": self.p_perm}


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_tests(
    a: np.ndarray | list[float],
    b: np.ndarray | list[float],
    n_permutations: int = N_PERMUTATIONS,
    seed: int = PERMUTATION_SEED,
) -> PairedResult:
    """Paired t-test and paired permutation test of B against A (same prompts, same order).

    Degenerate cases are defined rather than left to NaN: with every difference zero the runs
    are indistinguishable, so t = 0 and both p-values are 1; with a constant non-zero difference
    t is infinite (reported as None) and p_t = 0. Fewer than two pairs cannot be tested: NaN.
    With few pairs (2^n ≤ n_permutations) scipy enumerates every sign flip, an exact test.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_tests needs two equal-length 1-D score lists, got shapes {a.shape} and {b.shape}")
    if n_permutations < 1:
        raise ZebraError(f"--permutations must be at least 1, got {n_permutations}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        # NaN made ttest_rel return NaN and the permutation test p = 0: false significance
        raise ZebraError("paired_tests: a non-finite score; scores must be numbers in [0, 1]")
    n = int(a.size)
    if n < 2:
        mean = float(np.mean(b - a)) if n else math.nan
        return PairedResult(n=n, t=math.nan, p_t=math.nan, mean_delta=mean, p_perm=math.nan)
    d = b - a
    mean_delta = float(d.mean())
    if np.all(d == 0):
        return PairedResult(n=n, t=0.0, p_t=1.0, mean_delta=0.0, p_perm=1.0)
    with warnings.catch_warnings():
        # scipy warns about catastrophic cancellation when d is constant; handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        t_res = stats.ttest_rel(b, a)
    t = float(t_res.statistic)
    p_t = float(t_res.pvalue)
    if not math.isfinite(t):
        t, p_t = None, 0.0
    perm = stats.permutation_test(
        (b, a),
        _mean_diff,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_permutations,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
        # bounds memory to ~160 MB of float64 whatever n (pooled Table 2 runs reach 10^4–10^5 pairs)
        batch=max(1, 20_000_000 // n),
    )
    return PairedResult(n=n, t=t, p_t=p_t, mean_delta=mean_delta, p_perm=float(perm.pvalue))


# ----------------------------------------------------------------------------- reading runs


def read_scores(path: Path) -> dict[str, float]:
    """`id` → `score` from one `<benchmark>.jsonl` (zebra.jsonio reads it); a repeated id is an
    error (pairing needs ids)."""
    scores: dict[str, float] = {}
    try:
        records = list(iter_json_records(path, "evaluation records file"))
    except FileAccessError:
        raise
    except ReadError as err:
        raise RunError(str(err.with_hint("re-run evaluate.py"))) from None
    for line_no, rec in records:
        if "id" not in rec or "score" not in rec:
            raise RunError(f"{path}:{line_no}: not a record with `id` and `score`; re-run evaluate.py")
        key, score = str(rec["id"]), rec["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise RunError(f"{path}:{line_no}: score {score!r} is not a number in [0, 1]; re-run evaluate.py")
        if key in scores:
            raise RunError(f"{path}:{line_no}: id {key!r} appears twice; ids must be unique to pair runs")
        scores[key] = float(score)
    return scores


def read_run(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """benchmark → {id: score} for every `<benchmark>.jsonl` in an evaluation folder."""
    run_dir = Path(run_dir)
    if problem := not_a_folder(run_dir, "evaluation folder"):
        raise RunError(f"{problem}; pass the --output-dir of an evaluate.py run")
    files = sorted(p for p in run_dir.glob("*.jsonl"))
    if not files:
        raise RunError(f"{run_dir}: no <benchmark>.jsonl records; pass the --output-dir of an evaluate.py run")
    return {p.stem: read_scores(p) for p in files}


def paired_scores(a: dict[str, float], b: dict[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The ids both runs scored (sorted, so the pairing is order-free) and their two score vectors."""
    ids = sorted(set(a) & set(b))
    return ids, np.array([a[i] for i in ids], dtype=float), np.array([b[i] for i in ids], dtype=float)


def compare_runs(
    run_a: str | Path | dict,
    run_b: str | Path | dict,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = PERMUTATION_SEED,
    pooled_benchmarks: tuple[str, ...] = TABLE1_BENCHMARKS,
    benchmarks: tuple[str, ...] | None = None,
) -> dict[str, dict]:
    """Per benchmark and `pooled` (the Table 1 benchmarks together): B − A tests.

    Both runs must have the same benchmarks, else the pooled test would silently cover only
    their overlap: the error names what is missing on each side; `benchmarks` names the ones to
    compare instead (each must be in both runs). Only prompts present in both runs count; a
    benchmark the two runs share no prompt of is left out with a warning (evaluate both with the
    same --limit/--seed/data to pair every prompt).
    """
    name_a = str(run_a) if not isinstance(run_a, dict) else "run A"
    name_b = str(run_b) if not isinstance(run_b, dict) else "run B"
    ra = run_a if isinstance(run_a, dict) else read_run(run_a)
    rb = run_b if isinstance(run_b, dict) else read_run(run_b)
    if benchmarks is None:
        only_a, only_b = sorted(set(ra) - set(rb), key=_bench_key), sorted(set(rb) - set(ra), key=_bench_key)
        if only_a or only_b:
            sides = [f"only {name} has {','.join(names)}" for name, names in ((name_a, only_a), (name_b, only_b)) if names]
            raise RunError(
                f"{'; '.join(sides)}; a pooled test over the overlap would compare different benchmark sets: "
                "finish both evaluations or pass --benchmarks with the ones to compare"
            )
        chosen = sorted(set(ra) & set(rb), key=_bench_key)
    else:
        lacking = [f"{name} has no {bench}" for name, run in ((name_a, ra), (name_b, rb)) for bench in benchmarks if bench not in run]
        if lacking:
            raise RunError(f"--benchmarks: {'; '.join(lacking)}")
        chosen = sorted(set(benchmarks), key=_bench_key)
    out: dict[str, dict] = {}
    pooled_a: list[np.ndarray] = []
    pooled_b: list[np.ndarray] = []
    for bench in chosen:
        ids, sa, sb = paired_scores(ra[bench], rb[bench])
        if not ids:
            log.warning("%s: the two runs share no prompt id; skipped (same --limit/--seed/data?)", bench)
            continue
        dropped = len(ra[bench]) + len(rb[bench]) - 2 * len(ids)
        if dropped:
            log.warning("%s: %d prompt(s) scored by only one run are left out", bench, dropped)
        if bench in pooled_benchmarks:
            pooled_a.append(sa)
            pooled_b.append(sb)
        if len(ids) < 2:  # no test is defined (NaN p-values, not JSON)
            log.warning("%s: %d paired prompt(s), too few to test; left out", bench, len(ids))
            continue
        out[bench] = paired_tests(sa, sb, n_permutations, seed).as_dict()
    if sum(len(x) for x in pooled_a) >= 2:
        out["pooled"] = paired_tests(np.concatenate(pooled_a), np.concatenate(pooled_b), n_permutations, seed).as_dict()
    return out


def _bench_key(name: str) -> tuple[int, str]:
    order = list(BENCHMARK_TITLES)
    return (order.index(name) if name in order else len(order), name)


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "inf"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.{digits}f}"


def format_comparison(result: dict[str, dict], title: str = "B vs A") -> str:
    """Table 2's layout (t, p_t, mean Δ, p_perm) as a markdown table, one row per benchmark."""
    lines = [
        f"| {title} | n | t | p_t | Mean Δ (B − A) | p_perm |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for bench, r in result.items():
        name = BENCHMARK_TITLES.get(bench, bench)
        lines.append(
            f"| {name} | {r['n']} | {_fmt(r['t'])} | {_fmt(r['p_t'])} | {_fmt(r['mean_delta'])} | {_fmt(r['p_perm'])} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Run:
    path: Path
    model: str
    method: str
    strategy: str
    results: dict  # benchmark → summary entry (with `accuracy`)


def read_summary(path: Path) -> dict | None:
    """A `summary.json`, checked: JSON, a `results` object whose every benchmark has a finite
    `accuracy` in [0, 1]. None (with a warning naming it) for an unfinished run or a JSON file
    that is no evaluation summary at all."""
    try:
        data = read_json(path, "summary")
    except FileAccessError:
        raise
    except ReadError as err:
        raise RunError(str(err.with_hint("re-run that evaluation or move it out"))) from None
    if not isinstance(data, dict) or "results" not in data:
        # e.g. analyze.py's out/analysis/summary.json under a results folder: not a run
        log.warning("%s: no `results`; not an evaluate.py summary, skipped", path)
        return None
    for key in ("results", "run", "settings"):
        if key in data and not isinstance(data[key], dict):
            raise RunError(f"{path}: `{key}` is {data[key]!r:.60}, not an object; re-run that evaluation")
    for bench, res in data["results"].items():
        acc = res.get("accuracy") if isinstance(res, dict) else None
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc):
            raise RunError(f"{path}: {bench} has no finite `accuracy`; re-run that evaluation")
        if not 0.0 <= acc <= 1.0:
            raise RunError(f"{path}: {bench} accuracy {acc} is outside [0, 1]; re-run that evaluation")
    if "finished" in data and not isinstance(data["finished"], bool):  # "no" is truthy: never read it as done
        raise RunError(f"{path}: `finished` is {data['finished']!r}, not true or false; re-run that evaluation")
    if data.get("finished") is False:
        # an interrupted evaluate.py run has fewer benchmarks: Table 1 would average other sets
        log.warning("%s: unfinished run (finished: false) left out; re-run that evaluation to include it", path.parent)
        return None
    return data


def run_identity(data: dict, path: Path) -> tuple[str, str, str]:
    """(model, method, strategy) of a summary: its `run` object, as evaluate.py recorded it (the
    strategy from --run-strategy or the trained folder's `preference_data`, never a folder name).
    A summary without `run` is an untrained model named by its settings' `model` (or its folder)."""
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise RunError(f"{path}: `run` is {run!r}, not an object with model, method and strategy; re-run that evaluation")
    for key in ("model", "method", "strategy"):
        if run.get(key) is not None and not isinstance(run[key], str):
            raise RunError(f"{path}: run.{key} is {run[key]!r}, not a name; re-run that evaluation or fix its --run-{key}")
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    fallback = settings.get("model") if isinstance(settings.get("model"), str) else path.parent.name
    return run.get("model") or fallback, run.get("method") or "base", run.get("strategy") or "none"


def collect_runs(results_dir: str | Path) -> list[Run]:
    """Every finished `summary.json` under `results_dir` (any depth) with its run identity;
    unfinished runs are left out with a warning naming them."""
    results_dir = Path(results_dir)
    if problem := not_a_folder(results_dir):
        raise RunError(f"{problem}; pass the folder that holds evaluate.py output folders")
    runs = []
    for summary in sorted(results_dir.rglob("summary.json")):
        data = read_summary(summary)
        if data is None:
            continue
        model, method, strategy = run_identity(data, summary)
        runs.append(Run(path=summary.parent, model=model, method=method, strategy=strategy, results=data["results"]))
    seen: dict[tuple[str, str, str], Path] = {}
    for r in runs:
        key = (r.model, r.method, r.strategy)
        if key in seen:
            raise RunError(
                f"{r.path} and {seen[key]} are both model={r.model} method={r.method} strategy={r.strategy}; "
                "move one out or fix its --run-* flags"
            )
        seen[key] = r.path
    unknown = [str(r.path) for r in runs if r.strategy == "unknown"]
    if unknown:
        log.warning("strategy unknown (its training data had no binarize meta) for %s; re-run evaluate.py with "
                    "--run-strategy NAME to give it a column", ", ".join(unknown))
    return runs


def _ordered(values, order) -> list[str]:
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order))


def table5(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 5: rows (benchmark, model, method), one column per strategy, accuracy cells."""
    rows = []
    for r in runs:
        for bench, res in r.results.items():
            rows.append({"benchmark": bench, "model": r.model, "method": r.method, "strategy": r.strategy, "accuracy": res["accuracy"]})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["benchmark", "model", "method"], columns="strategy", values="accuracy", aggfunc="first")
    wide = wide[_ordered(wide.columns, STRATEGY_ORDER)]
    method_rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    wide = wide.reindex(sorted(wide.index, key=lambda k: (_bench_key(k[0]), k[1], method_rank.get(k[2], 99), k[2])))
    wide.columns.name = None
    return wide


def table1(runs: list[Run], benchmarks: tuple[str, ...] = TABLE1_BENCHMARKS) -> pd.DataFrame:
    """Paper Table 1: per strategy, the mean of each benchmark over the trained (model, method)
    runs present, `average` over the benchmarks, its difference from the baseline, and `n_runs`.

    Untrained `base` runs are left out (Table 1 compares training data). A strategy's mean uses
    only the runs it has, so compare strategies on the same grid (`n_runs` shows it).
    """
    trained = [r for r in runs if r.method != "base"]
    rows = []
    for strategy in _ordered({r.strategy for r in trained}, STRATEGY_ORDER):
        group = [r for r in trained if r.strategy == strategy]
        row: dict[str, float | str | int] = {"strategy": strategy}
        for bench in benchmarks:
            vals = [r.results[bench]["accuracy"] for r in group if bench in r.results]
            row[bench] = float(np.mean(vals)) if vals else math.nan
        present = [row[b] for b in benchmarks if not math.isnan(row[b])]
        row["average"] = float(np.mean(present)) if present else math.nan
        row["n_runs"] = len(group)
        rows.append(row)
    df = pd.DataFrame(rows, columns=["strategy", "average", *benchmarks, "n_runs"]).set_index("strategy")
    base = df.loc[BASELINE, "average"] if BASELINE in df.index else math.nan
    df.insert(1, "delta_vs_baseline", df["average"] - base)
    return df


def table2(runs: list[Run], n_permutations: int = N_PERMUTATIONS, seed: int = PERMUTATION_SEED) -> pd.DataFrame:
    """Paper Table 2: each strategy vs the baseline, over every prompt of the Table 1 benchmarks
    of every (model, method) that has both runs, paired by id (B = strategy, A = baseline)."""
    by_key = {(r.model, r.method, r.strategy): r for r in runs}
    rows = []
    for strategy in _ordered({r.strategy for r in runs if r.method != "base"}, STRATEGY_ORDER):
        if strategy == BASELINE:
            continue
        sa, sb = [], []
        for (model, method, s), run in by_key.items():
            base = by_key.get((model, method, BASELINE))
            if s != strategy or base is None:
                continue
            ra, rb = read_run(base.path), read_run(run.path)
            one_sided = sorted((set(ra) ^ set(rb)) & set(TABLE1_BENCHMARKS), key=_bench_key)
            if one_sided:
                log.warning("Table 2: %s vs %s: %s in only one of them, left out of the pooled test",
                            run.path, base.path, ",".join(one_sided))
            for bench in TABLE1_BENCHMARKS:
                if bench in ra and bench in rb:
                    _, a, b = paired_scores(ra[bench], rb[bench])
                    sa.append(a)
                    sb.append(b)
        if not sa:
            continue
        res = paired_tests(np.concatenate(sa), np.concatenate(sb), n_permutations, seed)
        rows.append({"comparison": f"{STRATEGY_TITLES.get(strategy, strategy)} vs BL", **res.as_dict()})
    return pd.DataFrame(rows, columns=["comparison", "n", "t", "p_t", "mean_delta", "p_perm"]).set_index("comparison")


def to_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A plain markdown table (no `tabulate` dependency); NaN shows as blank."""
    if df.empty:
        return "(no runs)"
    index_names = [n or "" for n in (df.index.names if df.index.nlevels > 1 else [df.index.name])]
    header = [*index_names, *[str(c) for c in df.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(index_names) + "---:|" * len(df.columns)]
    # itertuples keeps each column's type (iterrows would turn counts into floats)
    for idx, *row in df.itertuples(index=True, name=None):
        keys = list(idx) if isinstance(idx, tuple) else [idx]
        cells = []
        for v in row:
            if v is None:
                cells.append("inf")
            elif isinstance(v, (float, np.floating)):
                cells.append("" if math.isnan(v) else f"{v:.{digits}f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join([*map(str, keys), *cells]) + " |")
    return "\n".join(lines)


def pretty_table1(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed in the paper: titles, and the average shown as `0.31 (-0.00)`."""
    out = pd.DataFrame(index=[STRATEGY_TITLES.get(s, s) for s in df.index])
    out.index.name = "Strategy"
    out["Average"] = [
        f"{a:.4f}" if s == BASELINE or math.isnan(d) else f"{a:.4f} ({d:+.4f})"
        for s, a, d in zip(df.index, df["average"], df["delta_vs_baseline"])
    ]
    for bench in TABLE1_BENCHMARKS:
        if bench in df.columns:
            out[BENCHMARK_TITLES[bench]] = df[bench].to_numpy()
    out["runs"] = df["n_runs"].to_numpy()
    return out
