"""Behaviour tables from evaluation results: lm-evaluation-harness JSON (0.3 and 0.4 formats)
and this project's own `evaluate.py` `summary.json`.

One result file gives one model's scores on some tasks; `build_table` merges many into one row per
model and one column per task, the CSV that `zebra.behaviour.read_benchmark` reads. Every cell
keeps where it came from (file and key), so the table can be audited cell by cell.

Formats read:

- lm-eval 0.3 (`main.py` / `simple_evaluate`): `results` → task → `acc`, `acc_norm`, …,
  `config.model_args` a string `pretrained=…,…`. MMLU is 57 `hendrycksTest-<subject>` tasks,
  renamed here `mmlu_<subject>` so both formats share task names.
- lm-eval 0.4: metric keys `<metric>,<filter>` (`acc,none`, `exact_match,strict-match`); the
  filter `none` is dropped (`acc`), any other is kept (`exact_match,strict-match`). Groups
  (`mmlu`, `mmlu_stem`, …) appear beside their subtasks.
- evaluate.py: `run` (model, method, strategy) and `results` → benchmark → `accuracy` (the
  headline, named by `metric`), plus IFEval's four official metrics.
- Open LLM Leaderboard v2 (`lm_eval --tasks leaderboard`, the 0.4 format): its 39 tasks become six
  columns (`aggregate_leaderboard`, members in `lmeval_leaderboard.csv`). IFEval and MMLU-Pro are
  `leaderboard_ifeval` and `leaderboard_mmlu_pro` as they are (prompt-level strict, `acc`), the
  accuracies the paper's columns hold. GPQA and MATH-Lvl-5 are their subtasks' size-weighted mean,
  lm-eval's own group rule (`weight_by_size: true`); the leaderboard's normalisation of one pooled
  accuracy above chance is an affine map that ZEBRA's min–max normalisation undoes (up to the clip
  at chance), so the raw accuracy is kept. BBH and MuSR are the leaderboard's score: each subtask
  normalised above its chance level 1/choices, clipped at 0, then averaged unweighted. Their
  subtasks have different chance levels (2 to 19 choices), so here the normalisation changes the
  weighting and is kept (metric `acc_norm_above_chance`).

MMLU groups. When a file holds all subjects of a group but not the group itself (every 0.3
file; a 0.4 run of the subjects alone), the group is computed as lm-eval 0.4 computes it: the mean
of the subjects' scores weighted by their test-set sizes (`weight_by_size`, checked here against
the group values that real 0.4 files report). `mmlu` is the size-weighted mean over all 57
subjects; `mmlu_stem`, `mmlu_humanities`, `mmlu_social_sciences`, `mmlu_other` over theirs
(subjects, groups and sizes in `lmeval_mmlu.csv`). lm-eval 0.3 had no groups. A group with a
subject missing is not computed (a partial mean is not that group's score).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import logging
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from zebra.errors import ZebraError
from zebra.jsonio import read_json, read_text

log = logging.getLogger(__name__)

MMLU_TABLE = Path(__file__).with_name("lmeval_mmlu.csv")
LEADERBOARD_TABLE = Path(__file__).with_name("lmeval_leaderboard.csv")
# lm-eval's own rows for the leaderboard groups: mixtures (`leaderboard` averages every metric of every
# task) or size-weighted raw means; the columns above replace them, so they are no columns by default
LEADERBOARD_GROUPS = ("leaderboard", "leaderboard_bbh", "leaderboard_gpqa", "leaderboard_math_hard", "leaderboard_musr")
ABOVE_CHANCE = "acc_norm_above_chance"  # the leaderboard's normalised score of BBH and MuSR
MMLU_GROUPS = ("mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other")
# ZEBRA reads a higher score as better; these metrics go the other way and cannot be a column.
LOWER_IS_BETTER = {"perplexity", "ppl", "word_perplexity", "byte_perplexity", "bits_per_byte", "likelihood_difference"}
MISSING_POLICIES = ("error", "drop-task", "drop-model", "keep")
CONFLICT_POLICIES = ("error", "first", "last")
FORMAT_V03, FORMAT_V04, FORMAT_EVALUATE = "lm-eval 0.3", "lm-eval 0.4", "evaluate.py"
_SAME = 1e-12  # two files "agree" on a cell when their values differ by at most this


class ResultFileError(ZebraError):
    """An evaluation result file, a names map or a table setting that cannot be used."""


@dataclass(frozen=True)
class Score:
    value: float
    key: str  # where in the file, e.g. results["arc_challenge"]["acc_norm,none"]


@dataclass(frozen=True)
class ResultFile:
    """One model's scores from one file: task → metric → Score."""

    path: str
    format: str
    model: str
    tasks: dict[str, dict[str, Score]]
    lower_is_better: frozenset[tuple[str, str]] = frozenset()  # (task, metric) the file marks so
    headline: dict[str, str] = field(default_factory=dict)  # evaluate.py: task → its own metric


@dataclass(frozen=True)
class Cell:
    model: str  # the behaviour-table name (after --model-names)
    task: str
    metric: str
    value: float
    file: str
    key: str
    source_model: str  # the name the file gives
    format: str


@dataclass
class BuiltTable:
    models: list[str]
    tasks: list[str]
    cells: dict[tuple[str, str], Cell]
    counts: dict[str, Any]
    notes: list[str]  # every counted choice, in words (also logged)

    def value(self, model: str, task: str) -> float | None:
        cell = self.cells.get((model, task))
        return None if cell is None else cell.value


# ----------------------------------------------------------------------------- MMLU groups


def read_mmlu_groups(path: str | Path = MMLU_TABLE) -> dict[str, tuple[str, int]]:
    """subject → (group task name, test-set size) from the shipped `lmeval_mmlu.csv`."""
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return {r["subject"]: (f"mmlu_{r['group']}", int(r["n_test"])) for r in rows}


def mmlu_subtask_name(task: str) -> str:
    """lm-eval 0.3's `hendrycksTest-<subject>` → 0.4's `mmlu_<subject>`; other names unchanged."""
    return "mmlu_" + task[len("hendrycksTest-"):] if task.startswith("hendrycksTest-") else task


def aggregate_mmlu(
    tasks: Mapping[str, Mapping[str, Score]], groups: Mapping[str, tuple[str, int]], path: str = "<file>"
) -> dict[str, dict[str, Score]]:
    """The MMLU groups a file lacks, as size-weighted means of its subjects (lm-eval 0.4's rule).

    Returns only new groups: one already in `tasks` is the harness's own value and is kept. A
    metric is aggregated when every subject of the group has it.
    """
    members: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for subject, (group, n) in groups.items():
        members[group].append((f"mmlu_{subject}", n))
        members["mmlu"].append((f"mmlu_{subject}", n))
    out: dict[str, dict[str, Score]] = {}
    for group, subs in members.items():
        if group in tasks or not all(s in tasks for s, _ in subs):
            if group not in tasks and any(s in tasks for s, _ in subs):
                have = sum(s in tasks for s, _ in subs)
                log.warning("%s: %s has %d of its %d subjects; the group is not computed", path, group, have, len(subs))
            continue
        metrics = set.intersection(*(set(tasks[s]) for s, _ in subs))
        total = sum(n for _, n in subs)
        agg = {}
        for m in sorted(metrics):
            value = sum(tasks[s][m].value * n for s, n in subs) / total
            first_key = tasks[subs[0][0]][m].key
            agg[m] = Score(value, f"size-weighted mean of {len(subs)} subjects' {m} (e.g. {first_key}; sizes: lmeval_mmlu.csv)")
        if agg:
            out[group] = agg
    return out


# ----------------------------------------------------------------------------- Open LLM Leaderboard v2


@dataclass(frozen=True)
class LeaderboardTask:
    task: str
    column: str
    metric: str
    choices: int  # 0: generative, chance 0
    n: int


def read_leaderboard_table(path: str | Path = LEADERBOARD_TABLE) -> dict[str, list[LeaderboardTask]]:
    """column → its member tasks, from the shipped `lmeval_leaderboard.csv`."""
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    out: dict[str, list[LeaderboardTask]] = defaultdict(list)
    for r in rows:
        out[r["column"]].append(LeaderboardTask(r["task"], r["column"], r["metric"], int(r["choices"]), int(r["n"])))
    return dict(out)


def above_chance(value: float, choices: int) -> float:
    """The leaderboard's normalised score: (x − 1/k)/(1 − 1/k), 0 below chance (huggingface/leaderboards,
    normalization.md); a generative task (k = 0) has chance 0 and keeps its score."""
    if choices <= 1:
        return value
    chance = 1.0 / choices
    return max(0.0, (value - chance) / (1.0 - chance))


def aggregate_leaderboard(
    tasks: Mapping[str, Mapping[str, Score]], table: Mapping[str, Sequence[LeaderboardTask]], path: str = "<file>"
) -> dict[str, dict[str, Score]]:
    """The six Leaderboard v2 columns of one file (module docstring), each only when every member
    task has its metric; a partial group is named in a warning and not computed."""
    out: dict[str, dict[str, Score]] = {}
    for column, members in table.items():
        present = [m for m in members if m.metric in tasks.get(m.task, {})]
        if len(present) < len(members):
            if present or any(m.task in tasks for m in members):
                log.warning("%s: %s has %d of its %d leaderboard tasks with %s; the column is not computed",
                            path, column, len(present), len(members), members[0].metric)
            continue
        if column in tasks:
            continue  # a task of that name in the file itself is kept as the file gives it
        scores = [tasks[m.task][m.metric].value for m in members]
        first = tasks[members[0].task][members[0].metric].key
        if len(members) == 1:
            out[column] = {k: Score(s.value, s.key) for k, s in tasks[members[0].task].items()}
        elif all(m.choices == members[0].choices for m in members):  # GPQA, MATH: one chance level
            total = sum(m.n for m in members)
            value = sum(v * m.n for v, m in zip(scores, members)) / total
            out[column] = {members[0].metric: Score(value, f"size-weighted mean of {len(members)} leaderboard tasks' "
                                                           f"{members[0].metric}, as lm-eval's group (e.g. {first}; "
                                                           "sizes: lmeval_leaderboard.csv)")}
        else:  # BBH, MuSR: chance levels differ, the leaderboard's normalised mean
            value = sum(above_chance(v, m.choices) for v, m in zip(scores, members)) / len(members)
            out[column] = {ABOVE_CHANCE: Score(value, f"mean of {len(members)} leaderboard tasks' {members[0].metric}, "
                                                      "each normalised above chance 1/choices and clipped at 0, as the "
                                                      f"Open LLM Leaderboard v2 (e.g. {first}; choices: lmeval_leaderboard.csv)")}
    return out


def leaderboard_parts(table: Mapping[str, Sequence[LeaderboardTask]]) -> frozenset[str]:
    """Tasks that feed a leaderboard column, and lm-eval's rows for their groups: no columns of their own."""
    return frozenset({m.task for members in table.values() for m in members} | set(LEADERBOARD_GROUPS))


# ----------------------------------------------------------------------------- parsing


def _model_name(value: Any, path: str, where: str) -> str | None:
    """A model name from the file: text, or None when absent; anything else would become a row
    named after its repr (a dict gave a row `{'a': 1}`)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ResultFileError(f"{path}: {where} is {_short(value)}, not a model name; name the model with "
                              "--model-names or fix the file")
    return str(value).strip() or None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mapping(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """data[key] as an object ({} when absent or null), else a one-line error naming it."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ResultFileError(f"{path}: `{key}` is {_short(value)}, not a JSON object")
    return value


def model_from_args(model_args: Any, path: str) -> str | None:
    """`pretrained=` from lm-eval's `model_args` (a `k=v,k=v` string, or a dict in newer 0.4)."""
    if isinstance(model_args, Mapping):
        return _model_name(model_args.get("pretrained"), path, "config.model_args pretrained=")
    if not isinstance(model_args, str):
        return None
    for part in model_args.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "pretrained" and value.strip():
            return value.strip()
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # `alias`, "N/A" stderrs, nested dicts
    return float(value)


def _check_value(value: float, path: str, key: str, metric: str) -> None:
    if not math.isfinite(value):
        raise ResultFileError(f"{path}: {key} is {value}; a score must be a finite number")
    bare = metric.split(",")[0]
    if (bare in ("acc", "acc_norm", "accuracy", "exact_match") or bare.endswith("_acc")) and not 0.0 <= value <= 1.0:
        raise ResultFileError(f"{path}: {key} is {value}, outside [0, 1] for an accuracy; is the file edited?")


def parse_lm_eval(data: Mapping[str, Any], path: str) -> ResultFile:
    """One lm-eval results JSON (0.3 or 0.4), already decoded, → a ResultFile."""
    results = data.get("results") if isinstance(data, Mapping) else None
    if isinstance(data, Mapping) and ("config_general" in data or (isinstance(results, Mapping) and any("|" in str(k) for k in results))):
        raise ResultFileError(f"{path}: the old Open LLM Leaderboard format (`harness|task|shots`) is not read; use lm-eval's own output")
    if not isinstance(results, Mapping) or not results:
        raise ResultFileError(f"{path}: no `results` object; not an lm-evaluation-harness results file")
    config = _mapping(data, "config", path)
    model = model_from_args(config.get("model_args"), path) or _model_name(data.get("model_name"), path, "`model_name`")
    if not model:
        raise ResultFileError(
            f"{path}: config.model_args has no pretrained= ({config.get('model_args')!r}); cannot name the model"
        )
    v04 = any("," in str(m) for task in results.values() if isinstance(task, Mapping) for m in task) or "configs" in data
    fmt = FORMAT_V04 if v04 else FORMAT_V03
    tasks: dict[str, dict[str, Score]] = {}
    for raw_task, metrics in results.items():
        if not isinstance(metrics, Mapping):
            continue
        task = mmlu_subtask_name(str(raw_task))
        for raw_metric, raw_value in metrics.items():
            name, _, filt = str(raw_metric).partition(",")
            if name.endswith("_stderr") or name == "alias":
                continue
            value = _number(raw_value)
            if value is None:
                continue
            metric = name if filt in ("", "none") else f"{name},{filt}"
            key = f"results[{json.dumps(raw_task)}][{json.dumps(raw_metric)}]"
            _check_value(value, path, key, metric)
            tasks.setdefault(task, {})[metric] = Score(value, key)
    lower = set()
    for task, flags in _mapping(data, "higher_is_better", path).items():
        if isinstance(flags, Mapping):
            lower.update((mmlu_subtask_name(task), m) for m, up in flags.items() if up is False)
    return ResultFile(path, fmt, model, tasks, frozenset(lower))


def parse_evaluate_summary(data: Mapping[str, Any], path: str) -> ResultFile:
    """evaluate.py's `summary.json` → a ResultFile. A trained run is named `<model>+<method>-<strategy>`
    so it never merges with its base model's row."""
    results = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(results, Mapping):
        raise ResultFileError(f"{path}: no `results` object; not an evaluate.py summary.json")
    run, settings = _mapping(data, "run", path), _mapping(data, "settings", path)
    model = (_model_name(run.get("model"), path, "run.model") or _model_name(settings.get("model"), path, "settings.model")
             or "")
    if not model:
        raise ResultFileError(f"{path}: no run.model or settings.model; cannot name the model")
    method = _model_name(run.get("method"), path, "run.method") or "base"
    strategy = _model_name(run.get("strategy"), path, "run.strategy") or "none"
    if method != "base" or strategy != "none":
        model = f"{model}+{method}-{strategy}"
    if data.get("finished") is False:
        log.warning("%s: finished is false (the evaluation was interrupted); its benchmarks so far are read", path)
    tasks: dict[str, dict[str, Score]] = {}
    headline: dict[str, str] = {}
    for task, entry in results.items():
        if not isinstance(entry, Mapping):
            continue
        for metric, raw_value in entry.items():
            value = _number(raw_value)
            if value is None or metric in ("n", "unparseable"):
                continue
            key = f"results[{json.dumps(task)}][{json.dumps(metric)}]"
            _check_value(value, path, key, metric)
            tasks.setdefault(str(task), {})[metric] = Score(value, key)
        headline[str(task)] = str(entry.get("metric") or "accuracy")
        if headline[str(task)] != "accuracy" and "accuracy" in tasks.get(str(task), {}):
            del tasks[str(task)]["accuracy"]  # IFEval: `accuracy` repeats the headline; keep one name
    return ResultFile(path, FORMAT_EVALUATE, model, tasks, headline=headline)


def _load_json(path: Path) -> Any:
    return read_json(path, "result file")


def _files(spec: str | Path, pattern: str, what: str) -> tuple[list[Path], bool]:
    path = Path(spec)
    if path.is_file():
        return [path], True
    if path.is_dir():
        found = sorted(p for p in path.rglob(pattern) if p.is_file())
        if not found:
            raise ResultFileError(f"{path}: no {pattern} file below it; pass the folder that holds {what}")
        return found, False
    raise ResultFileError(f"{path}: no such file or folder")


def read_result_files(
    lm_eval: Sequence[str | Path] = (), evaluate: Sequence[str | Path] = ()
) -> tuple[list[ResultFile], list[str]]:
    """Every result file under the given files/folders, sorted by path within each argument.

    A folder may hold other JSON (lm-eval's samples, a tool's own summary): a `.json` below an
    `--lm-eval` folder without a `results` object is skipped and named; a file named directly
    must parse.
    """
    groups = read_mmlu_groups()
    leaderboard = read_leaderboard_table()
    out: list[ResultFile] = []
    skipped: list[str] = []
    for spec in lm_eval:
        paths, named = _files(spec, "*.json", "lm-eval results_*.json files")
        for p in paths:
            data = _load_json(p)
            if not named and not (isinstance(data, Mapping) and isinstance(data.get("results"), Mapping)):
                skipped.append(str(p))
                continue
            rf = parse_lm_eval(data, str(p))
            rf.tasks.update(aggregate_mmlu(rf.tasks, groups, str(p)))
            rf.tasks.update(aggregate_leaderboard(rf.tasks, leaderboard, str(p)))
            out.append(rf)
    for spec in evaluate:
        paths, _ = _files(spec, "summary.json", "evaluate.py --output-dir folders")
        out.extend(parse_evaluate_summary(_load_json(p), str(p)) for p in paths)
    if skipped:
        log.warning("%d JSON file(s) without `results` skipped: %s", len(skipped), ", ".join(skipped))
    return out, skipped


# ----------------------------------------------------------------------------- names, metrics


def read_model_names(path: str | Path) -> dict[str, str]:
    """The pools' names map (zebra.pools.read_model_names), with its header spelled out:
    CSV `pool_name,behaviour_table_name` (the file's name → the table's)."""
    from zebra.pools import PoolError
    from zebra.pools import read_model_names as read_pool_names

    path = Path(path)
    if path.is_file():
        header = next(csv.reader(io.StringIO(read_text(path, "--model-names file"), newline="")), [])
        if [c.strip() for c in header] != ["pool_name", "behaviour_table_name"]:
            raise ResultFileError(f"{path}: header must be exactly pool_name,behaviour_table_name")
    try:
        return read_pool_names(path)
    except PoolError as err:
        raise ResultFileError(str(err)) from None


def map_model_name(source: str, names: Mapping[str, str]) -> str | None:
    """The table name for a file's model: the full name (`meta-llama/Llama-2-7b-chat-hf`), else
    its last path part (`Llama-2-7b-chat-hf`), exact match; None when the map has neither."""
    if source in names:
        return names[source]
    tail = source.rstrip("/").rsplit("/", 1)[-1]
    return names.get(tail)


def metric_name(metric: str) -> str:
    """A metric as this module names it: lm-eval 0.4's `acc,none` is `acc` (the filter `none` is
    dropped when files are read), any other filter stays (`exact_match,strict-match`)."""
    name, _, filt = metric.strip().partition(",")
    return name.strip() if filt.strip() in ("", "none") else f"{name.strip()},{filt.strip()}"


def is_pattern(task: str) -> bool:
    """A `--metric` key with shell-style wildcards (`leaderboard_bbh_*`) names every task it matches."""
    return any(c in task for c in "*?[")


def parse_metric_overrides(items: Iterable[str]) -> dict[str, str]:
    """`--metric TASK=METRIC` flags → {task or pattern: metric}; `METRIC,none` is `METRIC`."""
    out: dict[str, str] = {}
    for item in items:
        task, sep, metric = item.partition("=")
        task, metric = task.strip(), metric.strip()
        if not sep or not task or not metric or not metric_name(metric):
            raise ResultFileError(f"--metric {item!r}: write TASK=METRIC, e.g. arc_challenge=acc")
        if task in out and out[task] != metric_name(metric):
            raise ResultFileError(f"--metric {task!r} is given twice, as {out[task]!r} and {metric_name(metric)!r}; keep one")
        out[task] = metric_name(metric)
    return out


def override_for(task: str, overrides: Mapping[str, str]) -> str | None:
    """The `--metric` of `task`: its exact key, else the patterns that match it (which must agree)."""
    if task in overrides:
        return overrides[task]
    hits = {pattern: metric for pattern, metric in overrides.items()
            if is_pattern(pattern) and fnmatch.fnmatchcase(task, pattern)}
    if len(set(hits.values())) > 1:
        raise ResultFileError(f"--metric: task {task} matches {', '.join(f'{k}={v}' for k, v in hits.items())}, "
                              "which name different metrics; name the task itself or narrow a pattern")
    return next(iter(hits.values()), None)


def _matches(task: str, key: str) -> bool:
    return fnmatch.fnmatchcase(task, key) if is_pattern(key) else task == key


def choose_metric(task: str, available: Iterable[str], metrics: Mapping[str, str], fallback: str) -> str | None:
    """The metric of `task`'s column: `metrics[task]` if named (even when this file lacks it: a
    column keeps one metric, so a file without it leaves the cell missing), else `fallback`
    (`acc`) when present, else None (no column from this file)."""
    if task in metrics:
        return metrics[task]
    return fallback if fallback in set(available) else None


# ----------------------------------------------------------------------------- building


def _is_mmlu_subject(task: str, groups: Mapping[str, tuple[str, int]]) -> bool:
    return task.startswith("mmlu_") and task[len("mmlu_"):] in groups


def _describe_tasks(tasks: Iterable[str], is_part, limit: int = 40) -> str:
    """The tasks the files have, for an error: the column-able ones by name, the parts counted."""
    tasks = sorted(set(tasks))
    shown = [t for t in tasks if not is_part(t)]
    parts = len(tasks) - len(shown)
    text = ", ".join(shown[:limit]) + (f", ... ({len(shown) - limit} more)" if len(shown) > limit else "")
    if parts:
        text += (f" (and {parts} subtasks that feed those columns, e.g. MMLU subjects or Open LLM Leaderboard tasks; "
                 "--tasks can name them too)")
    return text or "none"


def build_table(
    files: Sequence[ResultFile],
    *,
    metrics: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    fallback: str = "acc",
    names: Mapping[str, str] | None = None,
    only_mapped: bool = False,
    tasks: Sequence[str] | None = None,
    missing: str = "error",
    on_conflict: str = "error",
) -> BuiltTable:
    """Merge result files into one row per model, one column per task.

    - metric: `overrides` (a task or a `*` pattern; each must match a column) > `metrics` (the
      defaults) > `fallback`; evaluate.py summaries use their own headline (`accuracy`, IFEval
      prompt-level strict) unless overridden. `METRIC,none` is `METRIC`.
    - columns: `tasks` in that order, else every task found (sorted), MMLU's 57 subjects and the
      Open LLM Leaderboard's tasks left out (their groups and columns stand for them).
    - two files with the same (model, task): equal values agree; different values stop the run
      (`on_conflict="error"`) or keep the first/last file in path order, counted and named.
    - missing cells: stop (`error`), keep only the tasks every model has (`drop-task`), the
      models with every task (`drop-model`), or leave them empty (`keep`: read_benchmark then
      excludes those models with a warning).
    """
    if missing not in MISSING_POLICIES:
        raise ResultFileError(f"--missing must be one of {', '.join(MISSING_POLICIES)}, not {missing!r}")
    if on_conflict not in CONFLICT_POLICIES:
        raise ResultFileError(f"--on-conflict must be one of {', '.join(CONFLICT_POLICIES)}, not {on_conflict!r}")
    if not files:
        raise ResultFileError("no result files given; pass --lm-eval and/or --evaluate")
    overrides = {k: metric_name(v) for k, v in (overrides or {}).items()}
    metrics = {k: metric_name(v) for k, v in metrics.items()}
    names = dict(names or {})
    groups = read_mmlu_groups()
    parts = leaderboard_parts(read_leaderboard_table())

    def is_part(task: str) -> bool:
        return _is_mmlu_subject(task, groups) or task in parts

    available: dict[str, set[str]] = defaultdict(set)  # every task of every file → its metrics
    for rf in files:
        for task, scores in rf.tasks.items():
            available[task].update(scores)
    notes: list[str] = []
    counts: Counter = Counter(files=len(files))
    wanted = list(dict.fromkeys(tasks)) if tasks else None

    # one file → its model's (task → cell) contributions
    cells: dict[tuple[str, str], Cell] = {}
    conflicts: list[str] = []
    unmapped: dict[str, list[str]] = defaultdict(list)
    no_metric: dict[str, set[str]] = defaultdict(set)
    seen_models: set[str] = set()
    for rf in files:
        model = map_model_name(rf.model, names) if names else rf.model
        if model is None:
            if only_mapped:
                unmapped[rf.model].append(rf.path)
                continue
            model = rf.model
        seen_models.add(model)  # a row even when none of its cells is usable: that is a missing cell, not no model
        for task, scores in rf.tasks.items():
            if wanted is not None and task not in wanted:
                continue
            if wanted is None and is_part(task):
                continue
            override = override_for(task, overrides)
            if override is not None:
                metric = override
            elif rf.format == FORMAT_EVALUATE:
                metric = rf.headline.get(task, "accuracy")
            else:
                metric = choose_metric(task, scores, metrics, fallback)
            if metric is None:
                no_metric[task].add(rf.path)
                continue
            if rf.format == FORMAT_EVALUATE and metric == "acc" and "acc" not in scores:
                metric = "accuracy"  # evaluate.py's name for it: `--metric arc_challenge=acc` covers both kinds of file
            if metric.split(",")[0] in LOWER_IS_BETTER or (task, metric) in rf.lower_is_better:
                raise ResultFileError(
                    f"{rf.path}: {task} metric {metric!r} is lower-is-better, but a behaviour table reads higher as "
                    f"better; pick another with --metric {task}=METRIC"
                )
            if metric not in scores:
                if override is not None:
                    raise ResultFileError(
                        f"{rf.path}: {task} has no metric {metric!r} (--metric); it has {', '.join(sorted(scores))}"
                    )
                counts["cells_without_metric"] += 1
                notes.append(f"{rf.path}: {task} has no {metric!r} (has {', '.join(sorted(scores))}); cell left missing")
                continue
            score = scores[metric]
            cell = Cell(model, task, metric, score.value, rf.path, score.key, rf.model, rf.format)
            old = cells.get((model, task))
            if old is None:
                cells[(model, task)] = cell
                continue
            if abs(old.value - cell.value) <= _SAME and old.metric == cell.metric:
                counts["cells_agreeing_duplicates"] += 1
                continue
            what = (f"{model} / {task}: {old.value!r} ({old.metric}) in {old.file} vs {cell.value!r} ({cell.metric}) "
                    f"in {cell.file}")
            if on_conflict == "error":
                raise ResultFileError(f"{what}; keep one file or pass --on-conflict first|last")
            conflicts.append(what + f"; kept the {on_conflict}")
            if on_conflict == "last":
                cells[(model, task)] = cell

    if unmapped:
        notes.append(f"{len(unmapped)} model(s) not in --model-names left out (--only-mapped): {', '.join(sorted(unmapped))}")
    if no_metric:
        notes.append(f"{len(no_metric)} task(s) with no {fallback!r} and no default metric are not columns: "
                     f"{', '.join(sorted(no_metric))} (choose one with --metric TASK=METRIC)")
    counts["tasks_without_metric"] = len(no_metric)
    counts["models_not_mapped"] = len(unmapped)
    counts["cells_conflicting"] = len(conflicts)
    notes.extend(conflicts)

    found_models = seen_models
    order = [n for n in dict.fromkeys(names.values()) if n in found_models]
    models = order + sorted(found_models - set(order))
    found_tasks = {t for _, t in cells}
    if wanted is not None:
        absent = [t for t in wanted if t not in found_tasks]
        if absent:
            t = absent[0]
            if t not in available:
                raise ResultFileError(f"--tasks {t!r}: no file has it; the files have {_describe_tasks(available, is_part)}")
            raise ResultFileError(f"--tasks {t!r}: no file has its metric (they give {', '.join(sorted(available[t]))}); "
                                  f"choose one with --metric {t}=METRIC")
        columns = wanted
    else:
        columns = sorted(found_tasks)
    for key, metric in overrides.items():  # a key that reaches no column would be silently ignored
        if not any(_matches(t, key) for t in columns):
            reached = [t for t in available if _matches(t, key)]
            why = (f"it matches {len(reached)} task(s) that are no columns ({', '.join(sorted(reached)[:3])}"
                   f"{', ...' if len(reached) > 3 else ''}): name them in --tasks to make them columns" if reached
                   else "no file has such a task")
            raise ResultFileError(f"--metric {key}={metric} matches no column ({why}); the columns are "
                                  f"{', '.join(columns) or 'none'}")
    if not models or not columns:
        raise ResultFileError("no model has any usable score; check --tasks, --metric and --model-names")

    holes = [(m, t) for m in models for t in columns if (m, t) not in cells]
    counts["cells_missing"] = len(holes)
    if holes:
        first = holes[0]
        if missing == "error":
            raise ResultFileError(
                f"{len(holes)} of {len(models) * len(columns)} cells are missing (first: model {first[0]!r}, task "
                f"{first[1]!r}); choose the columns with --tasks, or pass --missing drop-task|drop-model|keep"
            )
        if missing == "drop-task":
            dropped = [t for t in columns if any((m, t) not in cells for m in models)]
            columns = [t for t in columns if t not in dropped]
            notes.append(f"--missing drop-task: {len(dropped)} task(s) some model lacks left out: {', '.join(dropped)}")
            counts["tasks_dropped"] = len(dropped)
        elif missing == "drop-model":
            dropped = [m for m in models if any((m, t) not in cells for t in columns)]
            models = [m for m in models if m not in dropped]
            notes.append(f"--missing drop-model: {len(dropped)} model(s) lacking a task left out: {', '.join(dropped)}")
            counts["models_dropped"] = len(dropped)
        else:
            notes.append(f"--missing keep: {len(holes)} empty cell(s); read_benchmark excludes those models")
        if not models or not columns:
            raise ResultFileError(f"--missing {missing} leaves no {'task' if not columns else 'model'}; choose --tasks")

    kept = {(m, t): cells[(m, t)] for m in models for t in columns if (m, t) in cells}
    for t in columns:
        used = Counter(c.metric for (m, tt), c in kept.items() if tt == t)
        if len(used) > 1:
            notes.append(f"column {t} mixes metrics {dict(used)}; each cell's metric is in the provenance file")
    counts.update(models=len(models), tasks=len(columns), cells=len(kept))
    for note in notes:
        log.warning("%s", note)
    return BuiltTable(models, list(columns), kept, dict(counts), notes)


# ----------------------------------------------------------------------------- writing


def table_csv(table: BuiltTable) -> str:
    """The CSV text: `Model,<task>,…`, fractions as the files give them (full precision), empty = missing."""
    lines = [",".join(["Model", *table.tasks])]
    for m in table.models:
        if "," in m or '"' in m:
            raise ResultFileError(f"model name {m!r} holds a comma or quote; rename it with --model-names")
        row = [m] + ["" if (c := table.cells.get((m, t))) is None else repr(c.value) for t in table.tasks]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def provenance(table: BuiltTable, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings, counts, choices made, and every cell's file and key."""
    columns = {}
    for t in table.tasks:
        metrics = sorted({c.metric for (m, tt), c in table.cells.items() if tt == t})
        unit = ("fraction of the range above chance (Open LLM Leaderboard v2)" if metrics == [ABOVE_CHANCE]
                else "fraction (0-1)")
        columns[t] = {"metric": metrics[0] if len(metrics) == 1 else metrics, "unit": unit}
    return {
        "settings": dict(settings),
        "counts": table.counts,
        "columns": columns,
        "notes": table.notes,
        "cells": [
            {"model": c.model, "task": c.task, "metric": c.metric, "value": c.value, "file": c.file, "key": c.key,
             "source_model": c.source_model, "format": c.format}
            for m in table.models for t in table.tasks if (c := table.cells.get((m, t))) is not None
        ],
    }


def provenance_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".provenance.json")


def check_table_output(output: str | Path, inputs: Iterable[str | Path | None] = ()) -> None:
    """Before any work: the table is a .csv; neither it nor its provenance file is a folder or one
    of the run's inputs (a file read, or a file inside a folder read: the next run would read it)."""
    from zebra.settings import check_output_path

    output = Path(output)
    if output.suffix.lower() != ".csv":
        raise ResultFileError(f"--output {output}: a behaviour table is a .csv file")
    inputs = list(inputs)
    check_output_path(output, inputs)
    check_output_path(provenance_path(output), inputs, flag="--output's provenance file")


def write_table(table: BuiltTable, output: str | Path, settings: Mapping[str, Any]) -> tuple[Path, Path]:
    """The CSV and `<stem>.provenance.json` beside it, each through a temporary file + rename;
    both are fully built before either is replaced."""
    from zebra.records import make_parent

    output = Path(output)
    check_table_output(output)
    text = table_csv(table)
    prov = json.dumps(provenance(table, settings), indent=2, ensure_ascii=False) + "\n"
    make_parent(output)
    targets = [(output, text), (provenance_path(output), prov)]
    tmps = []
    try:
        for path, content in targets:
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmps.append(tmp)
            tmp.write_text(content, encoding="utf-8")
        for (path, _), tmp in zip(targets, tmps):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return output, provenance_path(output)


_TASK_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def parse_task_list(text: str | None) -> list[str] | None:
    """`--tasks a,b,c` → ['a', 'b', 'c'] (None: every task found)."""
    if text is None:
        return None
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in tasks if not _TASK_RE.match(t)]
    if not tasks or bad:
        raise ResultFileError(f"--tasks {text!r}: give comma-separated task names, e.g. arc_challenge,hellaswag")
    return tasks
