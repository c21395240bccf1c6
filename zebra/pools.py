"""Pools in long format: one row per response, turned into UltraFeedback-schema rows.

A researcher's own pool is usually one row per (prompt, model, response), as AlpacaEval's
`model_outputs.json` files are. `load_pool` reads such a file or folder and returns a
`datasets.Dataset` in the UltraFeedback schema (SPEC §3), one row per prompt:

    instruction  str
    source       str or null     (the pool's `source_field`, AlpacaEval's `dataset`)
    models       list[str]       (the completions' models, in order)
    completions  list[{model, response, overall_score?}]

so `zebra.data`, `zebra.pipeline` and `zebra.strategies` run on it unchanged. `overall_score`
exists only when the pool has instance labels (a judgments file or a score column); it is the
judge's own value, larger = better, so the RLAIF baseline (`--score overall`) and the GPT-4
agreement analysis read it as they read UltraFeedback's.

API (what the scripts and other helpers call):
    PoolOptions(...)                   every setting, all optional; a folder's `pool.json` fills
                                       the ones not given (flags > pool.json > defaults)
    is_long(source, options) -> bool   does `source` hold a long-format pool? (see "Detection")
    load_pool(source, options, limit)  -> Pool(dataset, report): report is a JSON-able dict of
                                       counts (rows, duplicates, unmapped names, judge errors, …)
    read_model_names(path) -> dict     pool name -> behaviour-table name

Fields (defaults read AlpacaEval's files; `--instruction-field`, `--model-field`,
`--response-field`, `--source-field` name others). Model names go through `--model-names CSV`
(two columns: pool name, behaviour-table name, with a header row); a pool name mapped twice is
an error; names the CSV does not list keep their pool spelling, so the binarize run counts and
names them as models not in the behaviour table, as it does for UltraFeedback.

Instance labels, optional, by one of:
- `--judgments FILE`, `--judgment-kind pairwise` (default): one row per judged response, each
  against a fixed reference (AlpacaEval: `instruction`, `generator_1` = the reference,
  `generator_2` = the judged model, `preference`). The value is kept as is: 1 = the reference
  won, 2 = the response won, in between = a probability-weighted preference (the weighted
  judge), 1.5 = a draw. 0 is AlpacaEval's older code for a draw and becomes 1.5, as AlpacaEval's
  own `pairwise_to_winrate` does; null is a judge failure: no label, counted
  (`judge_failures`). Any other value outside [1, 2] is an error. More than one reference in a
  file is an error (labels against two references do not compare).
- `--judgments FILE --judgment-kind score`: plain per-response scores (any finite number,
  larger = better; null = no label, counted).
- `--score-field NAME`: a per-response score column in the pool file itself.
A judgments file names its fields with `--judgment-instruction-field` (default: the pool's
instruction field), `--judgment-model-field` and `--judgment-value-field`. Judgment rows are matched to responses by exact prompt text and (mapped) model name. Identical
copies of a judgment row (AlpacaEval ships falcon-40b-instruct's twice) are dropped and counted;
two different values for one response, or a judgment for a response the pool does not hold, is
an error naming the file and row.

Bad or ambiguous rows: a model answering one prompt twice with different text is an error
(which one would be the model's?); an exact copy of a row is dropped and counted. A missing or
non-string prompt/model is an error naming the row; a null response becomes an empty one, which
the binarize run counts as `empty`.

`models_per_prompt` = K draws K of each prompt's responses the way UltraFeedback drew 4 of 17
models: each response gets a key from sha256(seed, prompt, model name) and the K smallest keys
stay. The draw depends on nothing else, so it is the same whatever `--limit`, batching or row
order; prompts with at most K responses keep them all. `judged_only` first keeps only the
responses that have a label (the agreement study's sub-pool: pairs GPT-4 can decide).

Detection: `--format long` / `ultrafeedback` decides; `auto` (default) calls a source long when
it is a folder with a `pool.json`, or a .json/.jsonl/.parquet/.csv file (or a folder of them)
whose first record has the response and model fields and no `completions`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from zebra.errors import ZebraError
from zebra.jsonio import first_json_record, read_json, read_json_records, read_text

log = logging.getLogger(__name__)

MANIFEST = "pool.json"
FORMATS = ("auto", "ultrafeedback", "long")
JUDGMENT_KINDS = ("pairwise", "score")
_EXTS = (".jsonl", ".json", ".parquet", ".csv")
# AlpacaEval's field names: the defaults when neither a flag nor pool.json names a field.
# The pool the scripts read by default (data/alpaca_eval: real responses, GPT-4 judged).
SHIPPED_POOL = Path(__file__).resolve().parent.parent / "data" / "alpaca_eval"
DEFAULTS = {
    "instruction_field": "instruction",
    "model_field": "generator",
    "response_field": "output",
    "source_field": "dataset",
    "judgment_kind": "pairwise",
    "judgment_model_field": "generator_2",
    "judgment_value_field": "preference",
    "judgment_reference_field": "generator_1",
}


class PoolError(ZebraError):
    """A long-format pool that cannot be used; one line naming the file, row and field."""


@dataclass(frozen=True)
class PoolOptions:
    """How to read a long-format pool. None = take it from pool.json, else from DEFAULTS."""

    format: str = "auto"  # auto | ultrafeedback | long
    instruction_field: str | None = None
    model_field: str | None = None
    response_field: str | None = None
    source_field: str | None = None  # optional in the data; becomes UltraFeedback's `source`
    score_field: str | None = None  # a per-response score column in the pool file itself
    model_names: str | None = None  # CSV: pool name, behaviour-table name
    judgments: str | None = None
    judgment_kind: str | None = None  # pairwise | score
    judgment_instruction_field: str | None = None  # None: the same name as instruction_field
    judgment_model_field: str | None = None
    judgment_value_field: str | None = None
    judgment_reference_field: str | None = None  # pairwise only; absent from the file = not checked
    judged_only: bool = False
    models_per_prompt: int | None = None  # None: keep every response
    seed: int = 42  # of the models_per_prompt draw; the binarize scripts pass their --seed

    def get(self, name: str) -> Any:
        value = getattr(self, name)
        return DEFAULTS.get(name) if value is None else value


@dataclass
class Pool:
    dataset: Any  # datasets.Dataset in the UltraFeedback schema
    report: dict[str, Any]


# --------------------------------------------------------------------------- detection


def _manifest(path: Path) -> dict[str, Any] | None:
    file = path / MANIFEST
    if not (path.is_dir() and file.is_file()):
        return None
    found = read_json(file, MANIFEST)
    known = {f.name for f in fields(PoolOptions)} | {"responses"}
    unknown = sorted(set(found) - known) if isinstance(found, dict) else ["(not an object)"]
    if unknown:
        raise PoolError(f"{file}: unknown setting(s) {unknown}; known: {sorted(known)}")
    return found


def resolve(source: str | Path, options: PoolOptions) -> tuple[list[Path], PoolOptions]:
    """The response files of a long-format source and the options with pool.json filled in.

    Paths in pool.json are relative to its folder; flags given explicitly win over it.
    """
    path = Path(source)
    manifest = _manifest(path)
    if manifest is not None:
        given = {f.name: getattr(options, f.name) for f in fields(PoolOptions)}
        merged = {}
        for key, value in manifest.items():
            if key == "responses":
                continue
            if key in ("model_names", "judgments") and value is not None:
                value = str(path / value)
            if given.get(key) in (None, False, "auto"):
                merged[key] = value
        options = replace(options, **merged)
        files = [path / manifest.get("responses", "model_outputs.jsonl")]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _EXTS and p.is_file())
        if not files:
            raise PoolError(f"{path}: no {MANIFEST} and no .json/.jsonl/.parquet/.csv files")
    else:
        files = [path]
    for f in files:
        if not f.is_file():
            raise PoolError(f"{f}: no such file" + (f" (named by {path / MANIFEST})" if manifest is not None else ""))
    return files, options


def _first_record(path: Path) -> dict | None:
    """The first record of a data file, reading as little of it as possible; None if unknown."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        from zebra.data import parquet_schema

        return {name: None for name in parquet_schema(path).names}
    if suffix == ".csv":
        return {name: None for name in next(csv.reader(io.StringIO(read_text(path, "CSV file"))), [])}
    if suffix not in (".json", ".jsonl"):
        return None
    return first_json_record(path)


def is_long(source: str | Path | None, options: PoolOptions | None = None) -> bool:
    """True when `source` is a long-format pool (module docstring, "Detection")."""
    options = options or PoolOptions()
    if options.format not in FORMATS:
        raise PoolError(f"--format must be one of {', '.join(FORMATS)}, not {options.format!r}")
    if source is None or options.format == "ultrafeedback":
        return False
    if options.format == "long":
        return True
    path = Path(source)
    if _manifest(path) is not None:
        return True
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _EXTS and p.is_file())
        if not files or any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return False
        path = files[0]
    if not path.is_file():
        return False
    first = _first_record(path)
    return (first is not None and "completions" not in first
            and options.get("response_field") in first and options.get("model_field") in first)


# --------------------------------------------------------------------------- reading


def _read_rows(path: Path) -> pd.DataFrame:
    """Every record of one file as a DataFrame of Python objects (no dtype guessing)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        from zebra.data import read_parquet

        df = read_parquet(path).to_pandas().astype(object)
        return df.where(df.notna(), None)
    if suffix == ".csv":
        try:
            return pd.read_csv(io.StringIO(read_text(path, "CSV file")), dtype=str, keep_default_na=False).astype(object)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
        except pd.errors.ParserError as err:
            raise PoolError(f"{path}: not a readable CSV ({str(err).strip().splitlines()[0]})") from None
    records = read_json_records(path, "pool file", allow_empty=True)
    df = pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()
    return df.where(df.notna(), None)  # a key missing from some records: None, not NaN


def _require(df: pd.DataFrame, where: str, names: dict[str, str]) -> None:
    for flag, name in names.items():
        if name not in df.columns:
            raise PoolError(f"{where}: no field {name!r} (set {flag}); its fields are {list(df.columns)}")


def _strings(values: pd.Series, where: str, what: str, rows: np.ndarray, allow_null: bool = False) -> np.ndarray:
    """`values` as an object array of str; a bad row is an error naming it (1-based)."""
    arr = values.to_numpy(dtype=object)
    bad = np.array([(v is not None or not allow_null) and not (isinstance(v, str) and (allow_null or v.strip()))
                    for v in arr], dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PoolError(f"{where}: row {rows[i]}: {what} must be a non-empty string, got {arr[i]!r}")
    return arr


def _sources(values: pd.Series, where: str, what: str, rows: np.ndarray) -> list:
    """The source field: text or null; anything else (5, an object) is an error naming its row,
    since the source decides which prompts --drop-sources drops."""
    out = values.tolist()
    for i, v in enumerate(out):
        if v is not None and not isinstance(v, str) and not (isinstance(v, float) and np.isnan(v)):
            raise PoolError(f"{where}: row {rows[i]}: {what} must be a string or null, got {str(v)[:60]}")
    return [v if isinstance(v, str) else None for v in out]


def _numbers(values: pd.Series, where: str, what: str, rows: np.ndarray) -> np.ndarray:
    """Floats, NaN for null/empty; a non-number (or inf) is an error naming its row."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and np.isnan(v)):
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise PoolError(f"{where}: row {rows[i]}: {what} {str(v)[:60]!r} is not a number") from None
        except OverflowError:  # an integer beyond any float
            raise PoolError(f"{where}: row {rows[i]}: {what} {str(v)[:60]} is not a finite number") from None
        if isinstance(v, bool) or not np.isfinite(out[i]):
            raise PoolError(f"{where}: row {rows[i]}: {what} {v!r} is not a finite number")
    return out


def read_model_names(path: str | Path) -> dict[str, str]:
    """pool name -> behaviour-table name from a two-column CSV with a header row."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path, "--model-names file"), newline=""))
    next(reader, None)  # the header
    mapping: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for row in reader:
        line = reader.line_num  # the file line where the row ends (a quoted name may span lines)
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise PoolError(f"{path}:{line}: expected two non-empty names (pool name, behaviour-table name), got {row}")
        pool, table = row[0].strip(), row[1].strip()
        if pool in mapping:
            raise PoolError(f"{path}:{line}: {pool!r} is mapped twice ({mapping[pool]!r} on line {line_of[pool]} "
                            f"and {table!r})")
        mapping[pool] = table
        line_of[pool] = line
    return mapping


def _judgments(path: Path, options: PoolOptions, names: dict[str, str], report: dict) -> pd.DataFrame:
    """(instruction, model, label) of a judgments file, deduplicated, 0 → 1.5 (pairwise)."""
    kind = options.get("judgment_kind")
    if kind not in JUDGMENT_KINDS:
        raise PoolError(f"--judgment-kind must be one of {', '.join(JUDGMENT_KINDS)}, not {kind!r}")
    df = _read_rows(path)
    where = str(path)
    inst = options.judgment_instruction_field or options.get("instruction_field")
    model, value = options.get("judgment_model_field"), options.get("judgment_value_field")
    _require(df, where, {"--judgment-instruction-field": inst, "--judgment-model-field": model, "--judgment-value-field": value})
    rows = np.arange(len(df)) + 1
    out = pd.DataFrame({"instruction": _strings(df[inst], where, inst, rows),
                        "model": [names.get(m, m) for m in _strings(df[model], where, model, rows)],
                        "label": _numbers(df[value], where, value, rows), "row": rows})
    if kind == "pairwise":
        ref_field = options.get("judgment_reference_field")
        if ref_field in df.columns:
            refs = sorted({str(r) for r in df[ref_field].tolist()})
            if len(refs) > 1:
                raise PoolError(f"{where}: judgments against {len(refs)} references {refs[:4]}; "
                                "labels against different references do not compare: split the file")
            report["judgment_reference"] = refs[0] if refs else None
        lab = out["label"].to_numpy()
        draw0 = lab == 0  # AlpacaEval's older code for a draw (alpaca_eval.metrics.pairwise_to_winrate)
        lab = np.where(draw0, 1.5, lab)
        bad = ~np.isnan(lab) & ((lab < 1) | (lab > 2))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PoolError(f"{where}: row {rows[i]}: {value} {lab[i]} is outside [1, 2] (1 = reference better, "
                            "2 = response better); use --judgment-kind score for plain scores")
        out["label"] = lab
        report["judgment_draws_coded_0"] = int(draw0.sum())
        report["judgment_draws"] = int((lab == 1.5).sum())
    copies = out.duplicated(["instruction", "model", "label"])
    report["judgment_rows"] = int(len(out))
    report["judgment_duplicate_copies"] = int(copies.sum())
    out = out[~copies]
    clash = out.duplicated(["instruction", "model"], keep=False)
    if clash.any():
        first = _first_clash(out, clash)
        raise PoolError(f"{where}: rows {first['row'].tolist()} judge {first['model'].iloc[0]!r} on one prompt "
                        f"with different values {first['label'].tolist()}")
    report["judge_failures"] = int(out["label"].isna().sum())
    return out


def _first_clash(df: pd.DataFrame, clash: pd.Series) -> pd.DataFrame:
    """The first two rows that clash on (instruction, model) with each other, not merely the
    first two rows that clash with some row (those can be on different prompts)."""
    first = df[clash].iloc[0]
    same = clash & (df["instruction"] == first["instruction"]) & (df["model"] == first["model"])
    return df[same].iloc[:2]


# --------------------------------------------------------------------------- the draw


def draw_keys(seed: int, prompts: np.ndarray, models: np.ndarray) -> np.ndarray:
    """A uniform key in [0, 1) per (seed, prompt, model), from sha256: nothing else moves it."""
    keys = np.empty(len(prompts))
    last, prefix = None, None
    for i, (p, m) in enumerate(zip(prompts.tolist(), models.tolist())):
        if p is not last:  # one prompt's responses usually sit together: hash its text once
            prefix, last = hashlib.sha256(f"{seed}\x00{p}\x00".encode("utf-8")), p
        digest = prefix.copy()
        digest.update(f"{m}".encode("utf-8"))  # = sha256(f"{seed}\0{p}\0{m}")
        keys[i] = int.from_bytes(digest.digest()[:7], "big") / float(1 << 56)
    return keys


def _check_options(options: PoolOptions) -> None:
    if options.format not in FORMATS:
        raise PoolError(f"--format must be one of {', '.join(FORMATS)}, not {options.format!r}")
    k = options.models_per_prompt
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
        raise PoolError(f"--models-per-prompt must be an integer of at least 2 (a pair needs two), not {k!r}")
    if options.score_field is not None and options.judgments is not None:
        raise PoolError("give either --score-field or --judgments, not both: which label would win?")


# --------------------------------------------------------------------------- the pool


def load_pool(source: str | Path, options: PoolOptions | None = None, limit: int | None = None) -> Pool:
    """Read a long-format pool; return it in the UltraFeedback schema and a report of counts.

    `limit` keeps the first N prompts (in order of first appearance) after the draw, which is
    per prompt, so the kept prompts' responses are the same with or without it.
    """
    import datasets

    options = options or PoolOptions()
    files, options = resolve(source, options)
    _check_options(options)
    inst, model, resp = options.get("instruction_field"), options.get("model_field"), options.get("response_field")
    src, score = options.get("source_field"), options.score_field
    names = read_model_names(options.model_names) if options.model_names else {}
    report: dict[str, Any] = {"files": [str(f) for f in files], "options": asdict(options)}

    parts = []
    for f in files:
        df = _read_rows(f)
        where = str(f)
        if df.empty:
            raise PoolError(f"{where}: no rows")
        _require(df, where, {"--instruction-field": inst, "--model-field": model, "--response-field": resp,
                             **({"--score-field": score} if score else {})})
        rows = np.arange(len(df)) + 1
        part = pd.DataFrame({
            "instruction": _strings(df[inst], where, inst, rows),
            "pool_model": _strings(df[model], where, model, rows),
            "response": ["" if v is None else v for v in _strings(df[resp], where, resp, rows, allow_null=True)],
            "source": _sources(df[src], where, src, rows) if src in df.columns else None,
            "label": _numbers(df[score], where, score, rows) if score else np.nan,
            "file": where, "row": rows,
        })
        parts.append(part)
    pool = pd.concat(parts, ignore_index=True)
    report["rows"] = int(len(pool))
    pool["model"] = [names.get(m, m) for m in pool["pool_model"]]
    unmapped = Counter(m for m in pool["pool_model"] if m not in names) if names else Counter()
    report["unmapped_model_names"] = dict(unmapped.most_common())
    if unmapped:
        log.info("pool: %d model name(s) not in --model-names, kept as spelled: %s", len(unmapped),
                 ", ".join(f"{m} ({c})" for m, c in unmapped.most_common()))

    pool = _drop_copies(pool, report, score)
    clash = pool.duplicated(["instruction", "model"], keep=False)
    if clash.any():
        a = _first_clash(pool, clash)
        via = f" (pool names {a['pool_model'].tolist()} map to it)" if a["pool_model"].nunique() > 1 else ""
        files = a["file"].tolist()
        where = (f"{files[0]}: rows {a['row'].tolist()}" if files[0] == files[1]
                 else f"{files[0]} row {a['row'].iloc[0]} and {files[1]} row {a['row'].iloc[1]}")
        raise PoolError(f"{where}: model {a['model'].iloc[0]!r}{via} answers "
                        f"one prompt twice with different text ({a['instruction'].iloc[0][:60]!r}); keep one")

    if options.judgments:
        judged = _judgments(Path(options.judgments), options, names, report)
        merged = judged.merge(pool[["instruction", "model"]].reset_index(), on=["instruction", "model"], how="left")
        orphan = merged["index"].isna()
        if orphan.any():
            j = merged[orphan].iloc[0]
            raise PoolError(f"{options.judgments}: row {j['row']} judges model {j['model']!r} on a prompt the pool has "
                            f"no response of it for ({j['instruction'][:60]!r}); is it the judgments of this pool?")
        pool.loc[merged["index"].astype(int).to_numpy(), "label"] = merged["label"].to_numpy()
        pool["label"] = pool["label"].astype(float)
    labelled = bool(options.judgments or score)
    if options.judged_only:
        if not labelled:
            raise PoolError("--judged-only needs labels: give --judgments or --score-field")
        report["dropped_unjudged"] = int(pool["label"].isna().sum())
        pool = pool[pool["label"].notna()].reset_index(drop=True)

    # prompts in order of first appearance; responses in file order inside a prompt
    pool["prompt"] = pd.factorize(pool["instruction"])[0]
    pool = pool.sort_values(["prompt"], kind="stable").reset_index(drop=True)
    k = options.models_per_prompt
    if k is not None:
        pool["key"] = draw_keys(options.seed, pool["instruction"].to_numpy(), pool["model"].to_numpy())
        rank = pool.groupby("prompt")["key"].rank(method="first")
        report["dropped_by_draw"] = int((rank > k).sum())
        pool = pool[(rank <= k).to_numpy()].reset_index(drop=True)
    if limit is not None:
        pool = pool[pool["prompt"] < limit].reset_index(drop=True)
    ds = datasets.Dataset(_to_arrow(pool, labelled))
    report["prompts"] = len(ds)
    report["responses"] = int(len(pool))
    report["labelled_responses"] = int(pool["label"].notna().sum()) if labelled else 0
    report["models"] = dict(Counter(pool["model"]).most_common())
    log.info("pool %s: %d prompts, %d responses%s", source, report["prompts"], report["responses"],
             f", {report['labelled_responses']} labelled" if labelled else "")
    return Pool(ds, report)


def _two_rows(group: pd.DataFrame, column: str) -> tuple[list[int], list]:
    """(rows, values) of two rows of `group` that differ in `column` (nulls ignored), values sorted."""
    group = group[group[column].notna()]
    first = group.iloc[0]
    other = group[group[column] != first[column]].iloc[0]
    pair = sorted([(first["row"], first[column]), (other["row"], other[column])])
    return [int(r) for r, _ in pair], sorted(v for _, v in pair)


def _drop_copies(pool: pd.DataFrame, report: dict, score: str | None) -> pd.DataFrame:
    """One row per (prompt, model, response), whatever the rows' order: exact copies are dropped and
    counted; copies that disagree on the score, or rows of one prompt that disagree on the source,
    are an error naming two rows (which would be right?). A null score or source is no disagreement."""
    key = ["instruction", "model", "response"]
    if score:
        values = pool.groupby(key, sort=False)["label"]
        clash = values.transform("nunique") > 1
        if clash.any():
            first = pool[clash].iloc[0]
            rows, found = _two_rows(pool[clash & (pool["instruction"] == first["instruction"])
                                         & (pool["model"] == first["model"]) & (pool["response"] == first["response"])],
                                    "label")
            raise PoolError(f"{first['file']}: rows {rows}: model {first['model']!r} gives one response on prompt "
                            f"{first['instruction'][:60]!r} two scores ({found[0]}, {found[1]}); keep one")
        pool["label"] = values.transform("max")  # a copy without a score takes its twin's
    if pool["source"].notna().any():
        sources = pool.groupby("instruction", sort=False)["source"]
        clash = sources.transform("nunique") > 1
        if clash.any():
            first = pool[clash].iloc[0]
            rows, found = _two_rows(pool[pool["instruction"] == first["instruction"]], "source")
            raise PoolError(f"{first['file']}: rows {rows}: prompt {first['instruction'][:60]!r} has two sources "
                            f"({found[0]!r}, {found[1]!r}); a prompt's rows must agree on --source-field")
        pool["source"] = sources.transform("first")  # the one non-null source, on every row of the prompt
    copies = pool.duplicated(key)
    report["duplicate_row_copies"] = int(copies.sum())
    return pool[~copies].reset_index(drop=True)


def _to_arrow(pool: pd.DataFrame, labelled: bool) -> pa.Table:
    """UltraFeedback-schema rows from the sorted long frame: one list of completions per prompt."""
    starts = np.flatnonzero(np.r_[True, pool["prompt"].to_numpy()[1:] != pool["prompt"].to_numpy()[:-1]]) \
        if len(pool) else np.zeros(0, dtype=int)
    offsets = pa.array(np.r_[starts, len(pool)].astype(np.int32))
    model = pa.array(pool["model"].tolist(), pa.string())
    parts = [model, pa.array(pool["response"].tolist(), pa.string())]
    names = ["model", "response"]
    if labelled:
        label = pool["label"].to_numpy(dtype=float)
        parts.append(pa.array(label, pa.float64(), mask=np.isnan(label)))
        names.append("overall_score")
    completions = pa.ListArray.from_arrays(offsets, pa.StructArray.from_arrays(parts, names=names))
    models = pa.ListArray.from_arrays(offsets, model)
    first = pool.iloc[starts] if len(pool) else pool
    source = first["source"].tolist() if "source" in first and first["source"].notna().any() else [None] * len(starts)
    return pa.table({"source": pa.array(source, pa.string()),
                     "instruction": pa.array(first["instruction"].tolist(), pa.string()),
                     "models": models, "completions": completions})
