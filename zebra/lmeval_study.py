"""How much ZEBRA depends on where the scores come from: one pool binarized with two behaviour
tables (e.g. the lm-eval table built by build_table.py and the paper's Table 4).

Two comparisons, each over the models both tables rate (`shared`):

- `shared`: both tables cut to the shared models (each renormalised over them), so the two runs
  see the same responses and differ only in the scores: the effect of the score source alone.
- `as_is`: each table as it is (the paper's has more models), which is what a user swapping the
  table gets; pairs then also change because one table rates responses the other skips.

Per strategy: how many prompts get a pair under both tables, and of those how many keep the same
(chosen, rejected) models, swap them, or change; Spearman's ρ of MB-SUP over the shared models;
and, when the pool carries GPT-4 labels (`overall_score`), how often GPT-4 prefers each table's
chosen response, as `analyze.py agreement` measures it (zebra.agreement.agreement_study: agree /
decided pairs, bootstrap 95 % interval), over all of a table's pairs and over the prompts where
the two tables' pairs differ. A long-format pool can be drawn to K responses per prompt (as
UltraFeedback drew 4 of 17 models) and cut to the judged responses, as the agreement study does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from zebra.behaviour import BehaviourTable, read_benchmark
from zebra.errors import ZebraError
from zebra.records import write_json_atomic

log = logging.getLogger(__name__)

LABEL = "overall_score"  # the GPT-4 label the agreement reads (the pool's judge value)


def shared_models(a: BehaviourTable, b: BehaviourTable) -> list[str]:
    """Models both tables rate, in `a`'s order."""
    shared = [m for m in a.models if m in b.index]
    if len(shared) < 2:
        raise ZebraError(f"{a.source} and {b.source} share {len(shared)} rated model(s); the study needs two")
    return shared


def restrict_csv(table: BehaviourTable, models: Sequence[str]) -> str:
    """The table's raw scores for `models` only, as a behaviour-table CSV (`%` cells as fractions,
    plain numbers as they are: each column keeps one unit)."""
    rows = [",".join(["Model", *table.benchmarks])]
    for m in models:
        rows.append(",".join([m, *(repr(float(v)) for v in table.raw[table.index[m]])]))
    return "\n".join(rows) + "\n"


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def mb_sup_over(table: BehaviourTable, models: Sequence[str]) -> np.ndarray:
    return np.array([table.mb_sup[table.index[m]] for m in models])


def compare_pairs(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, int]:
    """Per prompt: same (chosen, rejected), swapped, different; prompts with a pair under one table only."""
    left = a.drop_duplicates("prompt_id").set_index("prompt_id")[["chosen_model", "rejected_model"]]
    right = b.drop_duplicates("prompt_id").set_index("prompt_id")[["chosen_model", "rejected_model"]]
    both = left.join(right, how="inner", lsuffix="_a", rsuffix="_b")
    same = (both.chosen_model_a == both.chosen_model_b) & (both.rejected_model_a == both.rejected_model_b)
    swapped = (both.chosen_model_a == both.rejected_model_b) & (both.rejected_model_a == both.chosen_model_b)
    return {
        "pairs_a": len(left), "pairs_b": len(right), "prompts_both": len(both),
        "same": int(same.sum()), "swapped": int(swapped.sum()), "changed": int((~same).sum()),
        "changed_other_models": int((~same & ~swapped).sum()),
        "only_a": int((~left.index.isin(right.index)).sum()), "only_b": int((~right.index.isin(left.index)).sum()),
    }


def check_study_output(output: str | Path, inputs: Sequence[str | Path | None]) -> None:
    """Before any work: the study's folder is not a file, and no input (a table, the pool's file or
    folder) is it, lies inside it (its files would be replaced) or holds it (the pool folder would
    gain the study's JSON files and read them next time)."""
    from zebra.settings import SettingError

    out = Path(output).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise SettingError(f"--output-dir {output} is a file; the study writes a folder")
    for given in inputs:
        if given is None or not Path(given).expanduser().exists():
            continue  # a hub id, or the default data resolved elsewhere
        src = Path(given).expanduser().resolve()
        if src == out or out in src.parents or (src.is_dir() and src in out.parents):
            raise SettingError(f"--output-dir {output} would write over or into the input {given}; choose another folder")


def _binarize(strategy: str, benchmark: Path, data: str | None, output: Path, tau: float, pool, seed: int) -> pd.DataFrame:
    from zebra.analysis import load_records, pairs_frame
    from zebra.pipeline import BinarizeConfig, binarize

    binarize(BinarizeConfig(strategy, str(output), data=data, benchmark=str(benchmark), tau=tau, seed=seed,
                            progress=False, pool=pool))
    return pairs_frame(load_records(output), str(output))


def _agreement(row: pd.Series) -> dict[str, Any]:
    return {"records": int(row.records), "decided": int(row.decided), "agree": int(row.agree),
            "disagree": int(row.disagree), "tie": int(row.tie), "missing": int(row.missing),
            "agreement": None if pd.isna(row.agreement) else float(row.agreement),
            "ci": None if pd.isna(row.ci_low) else [float(row.ci_low), float(row.ci_high)]}


def run_study(table: str, paper: str, data: str | None, output: str, strategies: Sequence[str], tau: float,
              ks: Sequence[int | None] = (None,), judged_only: bool = False, seed: int = 42, min_gap: float = 0.0,
              n_boot: int = 2000) -> dict:
    """Binarize `data` with both tables (both comparisons, each K of `ks` responses per prompt:
    zebra.pools' draw, None = all), compare, and write `output/study.json`.

    GPT-4 agreement is zebra.agreement.agreement_study's (the README's agreement study): a pair is
    decided when both responses have a judge label and they differ by more than `min_gap`;
    agreement = agree / decided with a bootstrap 95 % interval.
    """

    from zebra.agreement import agreement_study, ratings_frame
    from zebra.data import locate, open_data
    from zebra.pools import PoolOptions

    out = Path(output)
    check_study_output(out, [table, paper, data])
    t_ours, t_paper = read_benchmark(table), read_benchmark(paper)
    models = shared_models(t_ours, t_paper)
    tables = {
        "shared": {"a": out / "tables" / "a_shared.csv", "b": out / "tables" / "b_shared.csv"},
        "as_is": {"a": Path(table), "b": Path(paper)},
    }
    (out / "tables").mkdir(parents=True, exist_ok=True)
    tables["shared"]["a"].write_text(restrict_csv(t_ours, models), encoding="utf-8")
    tables["shared"]["b"].write_text(restrict_csv(t_paper, models), encoding="utf-8")
    shared_a, shared_b = read_benchmark(tables["shared"]["a"]), read_benchmark(tables["shared"]["b"])

    result: dict[str, Any] = {
        "output": str(out), "notes": [],
        "table_a": table, "table_b": paper, "data": data, "tau": tau, "judged_only": judged_only, "seed": seed,
        "min_gap": min_gap, "n_boot": n_boot, "shared_models": models,
        "spearman_mb_sup": {
            "shared": spearman(mb_sup_over(shared_a, models), mb_sup_over(shared_b, models)),
            "as_is": spearman(mb_sup_over(t_ours, models), mb_sup_over(t_paper, models)),
        },
        "mb_sup_shared": {"a": dict(zip(models, mb_sup_over(shared_a, models).round(4).tolist())),
                          "b": dict(zip(models, mb_sup_over(shared_b, models).round(4).tolist()))},
        "comparisons": {},
    }
    for k in ks:
        pool = PoolOptions(judged_only=judged_only, models_per_prompt=k, seed=seed)
        ratings = ratings_frame(open_data(locate(data, pool)).dataset)
        labelled = bool(ratings[LABEL].notna().any())
        if not labelled:
            note = f"{data or 'the default data'}: no {LABEL} labels; agreement with GPT-4 is not computed"
            log.warning("%s", note)
            result["notes"].append(note)
        kname = "all" if k is None else str(k)
        for variant, paths in tables.items():
            for strategy in strategies:
                folder = out / f"k{kname}" / variant
                pa_ = _binarize(strategy, paths["a"], data, folder / f"a_{strategy}.json", tau, pool, seed)
                pb_ = _binarize(strategy, paths["b"], data, folder / f"b_{strategy}.json", tau, pool, seed)
                entry: dict[str, Any] = {"pairs": compare_pairs(pa_, pb_)}
                if labelled:
                    both = set(pa_.prompt_id) & set(pb_.prompt_id)
                    ka = pa_[pa_.prompt_id.isin(both)].drop_duplicates("prompt_id").set_index("prompt_id")
                    kb = pb_[pb_.prompt_id.isin(both)].drop_duplicates("prompt_id").set_index("prompt_id").reindex(ka.index)
                    differ = set(ka.index[((ka.chosen_model != kb.chosen_model) | (ka.rejected_model != kb.rejected_model)).to_numpy()])
                    frames = {"a_all": pa_, "b_all": pb_, "a_where_pairs_differ": pa_[pa_.prompt_id.isin(differ)],
                              "b_where_pairs_differ": pb_[pb_.prompt_id.isin(differ)]}
                    study = agreement_study(frames, ratings, LABEL, min_gap, n_boot, seed)
                    entry["gpt4"] = {row.strategy: _agreement(row) for row in study.itertuples()}
                result["comparisons"][f"K={kname}/{variant}/{strategy}"] = entry
    write_json_atomic(out / "study.json", result)
    return result


def format_study(result: dict) -> str:
    """The study as a few markdown lines (the README's table)."""
    rho = result["spearman_mb_sup"]
    lines = [
        f"A = {result['table_a']}, B = {result['table_b']}, data = {result['data'] or 'default'}, tau = {result['tau']}",
        f"shared models ({len(result['shared_models'])}): {', '.join(result['shared_models'])}",
        f"Spearman rho of MB-SUP over them: {rho['shared']:.3f} (both tables cut to them), {rho['as_is']:.3f} (as is)",
        "",
        "| K | tables | strategy | pairs A / B | prompts with both | same pair | changed | of which swapped | GPT-4 agrees with A | with B | A where they differ | B where they differ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(a: dict | None) -> str:
        if not a or a.get("agreement") is None:
            return "—"
        return f"{a['agreement']:.3f} ({a['agree']}/{a['decided']}, {a['ci'][0]:.2f}–{a['ci'][1]:.2f})"

    for name, e in result["comparisons"].items():
        kname, variant, strategy = name.split("/")
        p, g = e["pairs"], e.get("gpt4", {})
        lines.append(
            f"| {kname[2:]} | {variant} | {strategy.upper()} | {p['pairs_a']} / {p['pairs_b']} | {p['prompts_both']} | {p['same']} | "
            f"{p['changed']} | {p['swapped']} | {fmt(g.get('a_all'))} | {fmt(g.get('b_all'))} | "
            f"{fmt(g.get('a_where_pairs_differ'))} | {fmt(g.get('b_where_pairs_differ'))} |"
        )
    lines += ["", *(f"note: {n}" for n in result.get("notes", []))]
    if "output" in result:
        lines.append(f"details in {result['output']}: study.json, and each run's pairs with its .meta.json (settings, "
                     "counts, responses skipped by model) under k<K>/<tables>/; --verbose logs them as they run")
    return "\n".join(lines)
