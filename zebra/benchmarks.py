"""The six evaluation benchmarks: where they live, how to load them, and one pure row → item
function each that turns a dataset row (in the dataset's own schema) into a uniform `Item`.

| name          | hub id (config, split)                        | id field        | gold                     |
|---------------|-----------------------------------------------|-----------------|--------------------------|
| mmlu_stem     | cais/mmlu (19 STEM subjects, test)            | subject/row     | `answer` int 0–3         |
| mmlu_pro      | TIGER-Lab/MMLU-Pro (test, 12,032)             | question_id     | `answer` letter A–J      |
| arc_easy      | allenai/ai2_arc (ARC-Easy, test)              | id              | `answerKey` letter/digit |
| arc_challenge | allenai/ai2_arc (ARC-Challenge, test)         | id              | `answerKey` letter/digit |
| hellaswag     | Rowan/hellaswag (validation; test is unlabelled) | ind          | `label` "0"–"3"          |
| ifeval        | google/IFEval (train, 541)                    | key             | instruction checkers     |

Local copies (`--eval-dir DIR`): `DIR/<name>.jsonl` (or `.json`, `.parquet`), or a folder
`DIR/<name>/` holding data files or a `save_to_disk` dataset, rows in the hub schema. The test
fixtures in `tests/data/eval/` use exactly this layout.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from zebra import hub
from zebra.errors import ZebraError
from zebra.jsonio import read_json_records

log = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJ"  # MMLU-Pro has up to 10 options; the extraction patterns use A–J

# The 19 STEM subjects of MMLU (Hendrycks et al.; lm-eval's `mmlu_stem` group).
MMLU_STEM_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
    "college_computer_science", "college_mathematics", "college_physics", "computer_security",
    "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
    "high_school_chemistry", "high_school_computer_science", "high_school_mathematics",
    "high_school_physics", "high_school_statistics", "machine_learning",
)  # fmt: skip


class BenchmarkDataError(ZebraError):
    """A benchmark row or file that cannot be used; the message names file/row and what to do."""


@dataclass(frozen=True)
class Item:
    """One evaluation prompt: a multiple-choice question (options + gold letter) or an IFEval
    prompt (no options; `extra` carries `instruction_id_list` and `kwargs`)."""

    id: str
    question: str
    options: tuple[str, ...] = ()
    gold: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    hub_id: str
    configs: tuple[str | None, ...]  # several for MMLU (one per subject), concatenated in order
    split: str
    to_item: Callable[[dict, int], Item]
    kind: str  # "choice" | "ifeval"


def _choice_letter(index: int, n_options: int, where: str) -> str:
    if not 0 <= index < n_options:
        raise BenchmarkDataError(f"{where}: gold index {index} is outside the {n_options} options")
    return LETTERS[index]


def _check_options(options: list, where: str) -> tuple[str, ...]:
    if not options or len(options) > len(LETTERS):
        raise BenchmarkDataError(f"{where}: needs 1–{len(LETTERS)} options, got {len(options or [])}")
    return tuple(str(o) for o in options)


def mmlu_item(row: dict, index: int) -> Item:
    """cais/mmlu: `question`, `subject`, `choices` (4 strings), `answer` (int 0–3)."""
    where = f"mmlu row {index}"
    options = _check_options(row["choices"], where)
    subject = row.get("subject") or "unknown"
    # cais/mmlu has no id column; subject + position in that subject's split is stable
    key = row.get("id") or f"{subject}/{row.get('_subject_index', index)}"
    return Item(str(key), row["question"], options, _choice_letter(int(row["answer"]), len(options), where), {"subject": subject})


def mmlu_pro_item(row: dict, index: int) -> Item:
    """TIGER-Lab/MMLU-Pro: `question_id`, `question`, `options` (≤10), `answer` (letter), `answer_index`."""
    where = f"mmlu_pro question_id {row.get('question_id', index)}"
    options = _check_options(list(row["options"]), where)
    gold = _choice_letter(int(row["answer_index"]), len(options), where)
    if row.get("answer") and row["answer"] != gold:
        raise BenchmarkDataError(f"{where}: `answer` {row['answer']!r} disagrees with `answer_index` {row['answer_index']}")
    return Item(str(row["question_id"]), row["question"], options, gold, {"category": row.get("category")})


def arc_item(row: dict, index: int) -> Item:
    """allenai/ai2_arc: `id`, `question`, `choices` {`text`, `label`}, `answerKey`.

    Labels are letters for most rows but digits ("1"–"4") for some, and rows have 3–5 choices;
    options are shown as A, B, C… by position, and the gold letter is the position of `answerKey`
    among the labels (lm-eval does the same: `choices.label.index(answerKey)`).
    """
    where = f"arc id {row.get('id', index)}"
    labels = [str(x) for x in row["choices"]["label"]]
    options = _check_options(row["choices"]["text"], where)
    if len(labels) != len(options):
        raise BenchmarkDataError(f"{where}: {len(labels)} labels for {len(options)} choices")
    key = str(row["answerKey"]).strip()
    if key not in labels:
        raise BenchmarkDataError(f"{where}: answerKey {key!r} is not among the labels {labels}")
    return Item(str(row["id"]), row["question"], options, LETTERS[labels.index(key)], {"labels": labels})


def _hellaswag_clean(text: str) -> str:
    # lm-eval's HellaSwag preprocessing: WikiHow rows carry "[title]"-style artefacts
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_item(row: dict, index: int) -> Item:
    """Rowan/hellaswag: `ind`, `activity_label`, `ctx_a`, `ctx_b`, `endings` (4), `label` ("0"–"3").

    The question is lm-eval's query: "activity_label: ctx_a Ctx_b", cleaned the same way.
    """
    where = f"hellaswag ind {row.get('ind', index)}"
    if str(row.get("label", "")).strip() == "":
        raise BenchmarkDataError(f"{where}: no `label` (the hub's test split is unlabelled; use validation)")
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    question = _hellaswag_clean(row["activity_label"] + ": " + ctx)
    options = _check_options([_hellaswag_clean(e) for e in row["endings"]], where)
    return Item(str(row["ind"]), question, options, _choice_letter(int(row["label"]), len(options), where))


def ifeval_item(row: dict, index: int) -> Item:
    """google/IFEval: `key`, `prompt`, `instruction_id_list`, `kwargs` (one dict per instruction)."""
    where = f"ifeval key {row.get('key', index)}"
    ids, kwargs = list(row["instruction_id_list"]), list(row["kwargs"])
    if len(ids) != len(kwargs):
        raise BenchmarkDataError(f"{where}: {len(ids)} instruction ids but {len(kwargs)} kwargs dicts")
    # the hub's Arrow schema fills every kwarg name with None; the checkers want only the set ones
    kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in kwargs]
    return Item(str(row["key"]), row["prompt"], (), None, {"instruction_id_list": ids, "kwargs": kwargs})


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "mmlu_stem": BenchmarkSpec("mmlu_stem", "cais/mmlu", MMLU_STEM_SUBJECTS, "test", mmlu_item, "choice"),
    "mmlu_pro": BenchmarkSpec("mmlu_pro", "TIGER-Lab/MMLU-Pro", (None,), "test", mmlu_pro_item, "choice"),
    "arc_easy": BenchmarkSpec("arc_easy", "allenai/ai2_arc", ("ARC-Easy",), "test", arc_item, "choice"),
    "arc_challenge": BenchmarkSpec("arc_challenge", "allenai/ai2_arc", ("ARC-Challenge",), "test", arc_item, "choice"),
    "hellaswag": BenchmarkSpec("hellaswag", "Rowan/hellaswag", (None,), "validation", hellaswag_item, "choice"),
    "ifeval": BenchmarkSpec("ifeval", "google/IFEval", (None,), "train", ifeval_item, "ifeval"),
}


def parse_benchmarks(text: str) -> list[str]:
    """`"mmlu_stem,ifeval"` → names, checked against `BENCHMARKS`."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        raise BenchmarkDataError(f"--benchmarks: unknown {unknown or '(empty)'}; choose from {','.join(BENCHMARKS)}")
    return names


# ----------------------------------------------------------------------------- loading

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def _read_file(path: Path) -> list[dict]:
    """The rows of one local benchmark file: JSON lines or a JSON list (zebra.jsonio), or Parquet."""
    if path.suffix == ".parquet":
        from zebra.data import read_parquet

        return read_parquet(path).to_pylist()
    return read_json_records(path, "benchmark file", allow_empty=True)


def _read_folder(folder: Path, split: str) -> list[dict]:
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        import datasets

        ds = datasets.load_from_disk(str(folder))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise BenchmarkDataError(f"{folder}: saved dataset has splits {list(ds)}, not {split!r}")
            ds = ds[split]
        return ds.to_list()
    files = sorted(p for p in folder.rglob("*") if p.suffix in DATA_SUFFIXES)
    # a mirrored hub folder keeps every split; prefer the files named after the one we score
    named = [p for p in files if split in p.name]
    files = named or files
    if not files:
        raise BenchmarkDataError(f"{folder}: no {'/'.join(DATA_SUFFIXES)} files and no save_to_disk dataset")
    return [row for p in files for row in _read_file(p)]


def load_local_rows(spec: BenchmarkSpec, data_dir: str | Path) -> list[dict]:
    data_dir = Path(data_dir)
    for suffix in DATA_SUFFIXES:
        if (data_dir / f"{spec.name}{suffix}").is_file():
            return _read_file(data_dir / f"{spec.name}{suffix}")
    if (data_dir / spec.name).is_dir():
        return _read_folder(data_dir / spec.name, spec.split)
    raise BenchmarkDataError(
        f"--eval-dir {data_dir}: no {spec.name}.jsonl/.json/.parquet or {spec.name}/ folder; "
        f"mirror {spec.hub_id} ({spec.split}) there or drop --eval-dir to use the hub"
    )


def load_hub_rows(spec: BenchmarkSpec) -> list[dict]:
    import datasets

    hub.require_reachable(f"{spec.name} ({spec.hub_id})")
    rows: list[dict] = []
    for config in spec.configs:
        ds = datasets.load_dataset(spec.hub_id, config, split=spec.split)
        for i, row in enumerate(ds):
            if spec.name == "mmlu_stem":
                row = {**row, "_subject_index": i}
            rows.append(row)
    return rows


def load_items(name: str, data_dir: str | Path | None = None) -> list[Item]:
    """All items of a benchmark, from `data_dir` when given, else from the hub."""
    spec = BENCHMARKS[name]
    rows = load_local_rows(spec, data_dir) if data_dir else load_hub_rows(spec)
    if not rows:  # an empty benchmark would score NaN, which no table can use
        raise BenchmarkDataError(f"{name}: no rows in {data_dir or spec.hub_id}; mirror {spec.hub_id} ({spec.split}) there")
    if spec.name == "mmlu_stem":
        rows = _mmlu_stem_rows(rows)
    items = [spec.to_item(row, i) for i, row in enumerate(rows)]
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise BenchmarkDataError(f"{name}: id {it.id!r} appears twice; ids pair prompts across runs and must be unique")
        seen.add(it.id)
    return items


def _mmlu_stem_rows(rows: list[dict]) -> list[dict]:
    """Keep the STEM subjects (a local file may hold all 57) and number rows within a subject."""
    counters: dict[str, int] = {}
    out = []
    for row in rows:
        subject = row.get("subject")
        if subject not in MMLU_STEM_SUBJECTS:
            continue
        if "_subject_index" not in row:
            row = {**row, "_subject_index": counters.get(subject, 0)}
        counters[subject] = row["_subject_index"] + 1
        out.append(row)
    if rows and not out:
        raise BenchmarkDataError(f"mmlu_stem: none of {len(rows)} rows has a STEM `subject` ({MMLU_STEM_SUBJECTS[0]}, …)")
    return out


def sample_items(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """`limit` items drawn with a fixed seed, kept in dataset order, so two models evaluated with
    the same data, limit and seed see the same prompts (the paper scores 1,024 per benchmark)."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        raise BenchmarkDataError(f"--limit must be positive, got {limit}")
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


# ----------------------------------------------------------------------------- shipped real subsets

REAL_SUBSET_DIR = Path(__file__).resolve().parents[1] / "data" / "eval"
REAL_SUBSET_SIZE = 24  # per benchmark: the CPU smoke evaluates 6 × 24 prompts twice in minutes
REAL_SUBSET_SEED = 0
# where each benchmark's full split sits in SPEC §11's `realdata/eval/` folder (see its SOURCE.txt files)
REAL_SOURCES = {
    "mmlu_stem": "mmlu/mmlu_test_stem19.jsonl",
    "mmlu_pro": "mmlu_pro/mmlu_pro_test.jsonl",
    "arc_easy": "arc/arc_easy_test.jsonl",
    "arc_challenge": "arc/arc_challenge_test.jsonl",
    "hellaswag": "hellaswag/hellaswag_validation.jsonl",
    "ifeval": "ifeval/input_data.jsonl",
}


def arc_olmes_to_hub(row: dict, index: int) -> dict:
    """An ARC test row rebuilt from OLMES request files (`choices` = texts, `gold` = index) in
    the hub schema. The original labels are lost ("1"–"4" for a few rows); options are lettered
    by position, which is how `arc_item` shows them anyway."""
    where = f"arc id {row.get('id', index)}"
    options = _check_options(row["choices"], where)
    gold = _choice_letter(int(row["gold"]), len(options), where)
    if row.get("answerKey_olmes") not in (None, gold):
        raise BenchmarkDataError(f"{where}: answerKey_olmes {row['answerKey_olmes']!r} disagrees with gold {row['gold']}")
    labels = list(LETTERS[: len(options)])
    return {"id": row["id"], "question": row["question"], "choices": {"text": list(options), "label": labels}, "answerKey": gold}


def real_rows(name: str, rows: list[dict]) -> list[dict]:
    """A benchmark's full split from SPEC §11's realdata files, in the hub schema `load_items`
    reads: MMLU rows keep their index within the subject's test split (`_subject_index`), so item
    ids match a hub run's; ARC's OLMES rows are rebuilt; rows `to_item` refuses are left out
    with a warning naming them."""
    if name == "mmlu_stem":
        rows = _mmlu_stem_rows(rows)
    elif name in ("arc_easy", "arc_challenge"):
        rows = [arc_olmes_to_hub(r, i) if "gold" in r else r for i, r in enumerate(rows)]
    usable = []
    for i, row in enumerate(rows):
        try:
            BENCHMARKS[name].to_item(row, i)
        except BenchmarkDataError as e:  # e.g. MMLU-Pro question 3983: answer "C", answer_index 1
            log.warning("%s: left out (%s)", name, e)
            continue
        usable.append(row)
    return usable


def load_real_items(name: str, source_dir: str | Path) -> list[Item]:
    """Every usable item of a benchmark from a realdata/eval folder laid out as `REAL_SOURCES`."""
    path = Path(source_dir) / REAL_SOURCES[name]
    if not path.is_file():
        raise BenchmarkDataError(f"{source_dir}: no {REAL_SOURCES[name]} (a realdata/eval folder, SPEC §11)")
    return [BENCHMARKS[name].to_item(row, i) for i, row in enumerate(real_rows(name, _read_file(path)))]


def real_subset_rows(name: str, rows: list[dict], n: int, seed: int) -> list[dict]:
    """`n` rows of a benchmark's full split (`real_rows`), drawn with `seed` and kept in dataset
    order."""
    usable = real_rows(name, rows)
    if not 0 < n <= len(usable):
        raise BenchmarkDataError(f"--sample must be in 1..{len(usable)} for {name}, got {n}")
    chosen = sorted(random.Random(seed).sample(range(len(usable)), n))
    return [usable[i] for i in chosen]


def write_real_subsets(source_dir: str | Path, output_dir: str | Path, n: int = REAL_SUBSET_SIZE,
                       seed: int = REAL_SUBSET_SEED) -> dict[str, Path]:
    """`output_dir/<benchmark>.jsonl` for every benchmark, from `source_dir` laid out as
    `REAL_SOURCES` says; each file is written to a temporary name and renamed."""
    source_dir, output_dir = Path(source_dir), Path(output_dir)
    missing = [str(source_dir / rel) for rel in REAL_SOURCES.values() if not (source_dir / rel).is_file()]
    if missing:
        raise BenchmarkDataError(f"--source {source_dir}: missing {', '.join(missing)}")
    from zebra.records import write_text_atomic

    output_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, rel in REAL_SOURCES.items():
        subset = real_subset_rows(name, _read_file(source_dir / rel), n, seed)
        path = output_dir / f"{name}.jsonl"
        write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in subset))
        written[name] = path
    return written
