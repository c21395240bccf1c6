"""Binarize outputs → a Hugging Face dataset folder with a dataset card (what publish.py writes).

One config per strategy, each a `<config>/train.parquet` in trl's conversational preference format
with an explicit prompt (https://huggingface.co/docs/trl/dataset_formats):

    {"prompt":   [{"role": "user", "content": ...}],
     "chosen":   [{"role": "assistant", "content": ...}],
     "rejected": [{"role": "assistant", "content": ...}],
     "prompt_id", "chosen_model", "rejected_model", "mb_sup_chosen", "mb_sup_rejected", "mb_sim",
     "kinship_rank", "agreement", "entropy", "weight",
     "score_chosen", "score_rejected"}            # the pool's instance labels, where it had them

`README.md` is the card: YAML the hub reads (licence inherited from the pool, `configs` with their
data files, size category, task category, language, pretty name), then how the data was made
(the binarize command rebuilt from each meta, the behaviour table and its sha256, τ and weights,
counts read/written/skipped by reason, decontamination if it was run), and the GPT-4 agreement
numbers when an `analyze.py agreement` summary is given. Everything here is pure except the
readers and `write_dataset`, which builds the folder beside its target and renames it into place.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shlex
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zebra.cli import POOL_FLAGS, POOL_SWITCHES
from zebra.errors import ZebraError
from zebra.jsonio import ReadError, read_json

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_POOL = ROOT / "data" / "alpaca_eval"
SHIPPED_SAMPLE = ROOT / "data" / "ultrafeedback_sample.jsonl"
MARKER = "publish.json"  # a folder holding it was written by publish.py and may be replaced by it
# strategy (the meta's settings.strategy) → the script that makes it and the paper's name
SCRIPTS = {
    "sup": ("binarize_score.py", [], "SUP (superiority-first, the paper's Aq): top-1 vs top-2 model by MB-SUP"),
    "sim": ("binarize_similarity.py", [], "SIM (similarity-first, As): the most behaviour-alike admissible pair"),
    "sim_least": ("binarize_similarity.py", ["--order", "least"], "SIM-least: the least alike pair (the paper's contrast)"),
    "sup_sim": ("binarize_combined.py", [], "SUP+SIM (Aqs): rank_weight·mean MB-SUP + similarity_weight·MB-SIM"),
    "baseline": ("binarize_baseline.py", [], "RLAIF baseline: chosen by the pool's instance score (GPT-4), not ZEBRA"),
}
# the pool → its licence (hub id) and where that is stated; other pools need --license
KNOWN_LICENCES = {
    str(SHIPPED_POOL): ("cc-by-nc-4.0", "data/alpaca_eval/SOURCE.md: AlpacaEval's prompts are CC-BY-NC-4.0; "
                        "the responses are the named models' outputs, under their providers' terms"),
    "openbmb/UltraFeedback": ("mit", "openbmb/UltraFeedback's dataset card (MIT); its prompts come from datasets "
                              "with their own licences"),
}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"))
# columns carried over from the binarize records, beside trl's three
PROVENANCE = ("prompt_id", "mb_sup_chosen", "mb_sup_rejected", "mb_sim", "kinship_rank", "agreement", "entropy", "weight")
CITATION = """@inproceedings{jung2025zebra,
  title     = {ZEBRA: Leveraging Model-Behavioral Knowledge for Zero-Annotation Preference Dataset Construction},
  author    = {Jung, Jeesu and Park, Chanjun and Jung, Sangkeun},
  booktitle = {Proceedings of EMNLP 2025},
  year      = {2025}
}"""


class PublishError(ZebraError):
    """An input publish.py cannot turn into a dataset; the message names the file."""


# ----------------------------------------------------------------------------- inputs


@dataclass
class Source:
    """One binarize output: its records, its meta, and the config it becomes."""

    path: Path
    meta: dict
    records: list[dict]
    config: str = ""
    sha256: str = ""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_outputs(paths: list[str | Path]) -> list[Path]:
    """Binarize outputs named directly or found in a folder: .json/.jsonl/.parquet files with a
    `.meta.json` beside them."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".parquet")
                            and not p.name.endswith(".meta.json") and Path(f"{p}.meta.json").is_file())
            if not inside:
                raise PublishError(f"{path}: no binarize output (a .json/.jsonl/.parquet with its .meta.json) inside")
            found += inside
        elif path.is_file():
            if not Path(f"{path}.meta.json").is_file():
                raise PublishError(f"{path}: no {path.name}.meta.json beside it; publish binarize_*.py outputs")
            found.append(path)
        else:
            raise PublishError(f"{path}: no such file or folder")
    return found


def read_source(path: Path) -> Source:
    from zebra.records import read_records

    meta_path = Path(f"{path}.meta.json")
    try:
        meta = read_json(meta_path, "meta file")
    except ReadError as err:
        raise PublishError(str(err.with_hint("remake it with its binarize script"))) from None
    strategy = meta.get("settings", {}).get("strategy") if isinstance(meta, dict) and isinstance(meta.get("settings"), dict) else None
    if strategy not in SCRIPTS:
        raise PublishError(f"{meta_path}: settings.strategy is {strategy!r}, not one of {', '.join(SCRIPTS)}")
    return Source(path, meta, read_records(path), config=strategy, sha256=sha256_file(path))


def name_configs(sources: list[Source]) -> None:
    """Each config named by its strategy; two inputs of one strategy are an error naming both."""
    seen: dict[str, Path] = {}
    for s in sources:
        if s.config in seen:
            raise PublishError(f"{seen[s.config]} and {s.path} are both strategy {s.config}: a dataset has one config "
                               "per strategy; publish them into separate folders")
        seen[s.config] = s.path


def pool_of(meta: dict) -> str:
    data = meta.get("settings", {}).get("data")
    return str(SHIPPED_SAMPLE) if data is None else str(data)


# What the hub accepts in the card's fields; anything else would be free text inside the YAML header
# or the title line (a newline in --license wrote a second YAML key).
HUB_LICENCE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")  # cc-by-nc-4.0, apache-2.0, mit, other
ISO_639 = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")  # en, de, zh-Hant, yue
HUB_REPO_ID = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*")


def check_card_flags(licence: str | None, language: str, pretty_name: str, repo: str | None) -> None:
    """One-line refusals for flag values the card or the hub cannot hold, before any work."""
    if licence is not None and not HUB_LICENCE_ID.fullmatch(licence):
        raise PublishError(f"--license {licence!r}: not a hub licence id (lower case, e.g. cc-by-4.0, mit, other)")
    if not ISO_639.fullmatch(language):
        raise PublishError(f"--language {language!r}: not an ISO 639 code (e.g. en, de, zh)")
    if not pretty_name.strip() or not pretty_name.isprintable() or len(pretty_name) > 200:
        raise PublishError(f"--pretty-name {pretty_name!r}: the card's title must be one line of printable text "
                           "(at most 200 characters)")
    if repo is not None and (not HUB_REPO_ID.fullmatch(repo) or len(repo) > 96):
        raise PublishError(f"--push-to-hub {repo!r}: not a hub repo id (name or owner/name: letters, digits, '-', '_', '.')")


def licence(sources: list[Source], override: str | None) -> tuple[str, str]:
    """The pool's licence (hub licence id) and why; one pool per dataset unless --license says."""
    if override:
        return override, "set with --license"
    found = set()
    for s in sources:
        pool = pool_of(s.meta)
        key = str(Path(pool).resolve()) if Path(pool).exists() else pool
        if key not in KNOWN_LICENCES:
            raise PublishError(f"{s.path}: cannot tell the licence of its pool {pool}; pass --license "
                               "(a hub licence id such as cc-by-4.0, mit, other)")
        found.add(KNOWN_LICENCES[key])
    if len(found) > 1:
        raise PublishError(f"the inputs come from pools with different licences ({sorted(found)}); pass --license")
    return found.pop()


# ----------------------------------------------------------------------------- instance labels


def _response_key(prompt_id: str, model: str, text: str) -> tuple[str, str, bytes]:
    # a response's text (hashed: UltraFeedback repeats instructions, and a model may answer twice)
    return prompt_id, model, hashlib.sha1(text.encode("utf-8")).digest()


def pool_labels(meta: dict) -> dict[tuple, tuple[float, float]]:
    """(prompt_id, model, response) → (overall_score, mean aspect rating) of every labelled response
    of the pool a run read, loaded the way that run loaded it."""
    import numpy as np

    from zebra.data import iter_batches, locate, open_data, to_batch
    from zebra.pools import PoolOptions

    options = meta.get("settings", {}).get("pool") or {}
    try:
        pool = PoolOptions(**options)
    except TypeError as err:
        raise PublishError(f"settings.pool of the meta is not zebra.pools.PoolOptions ({err})") from None
    ds = open_data(locate(pool_of(meta), pool)).dataset
    labels: dict[tuple, tuple[float, float]] = {}
    for arrow_batch in iter_batches(ds):
        b = to_batch(arrow_batch)
        scores = b.scores("overall_score") if "overall_score" in b.flat.type.names else np.full(b.pos.shape, np.nan)
        if b.has_ratings():
            with warnings.catch_warnings():  # a response rated N/A on all four aspects: NaN, no label
                warnings.simplefilter("ignore", RuntimeWarning)
                ratings = np.nanmean(b.ratings(), axis=-1)
        else:  # no aspect ratings in this pool (a long-format pool's labels are scores)
            ratings = np.full(b.pos.shape, np.nan)
        rows, slots = np.nonzero(b.pos >= 0)
        for r, k, text in zip(rows, slots, b.texts(rows, slots)):
            if b.model[r, k] is None or text is None:
                continue
            score, rating = float(scores[r, k]), float(ratings[r, k])
            if not (math.isnan(score) and math.isnan(rating)):
                labels[_response_key(b.prompt_ids[r], str(b.model[r, k]), text)] = (score, rating)
    return labels


# ----------------------------------------------------------------------------- rows


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def dataset_rows(records: list[dict], labels: dict | None, where: str) -> tuple[list[dict], dict[str, int]]:
    """Records → rows of trl's conversational preference format with provenance and labels.

    trl's conversion (zebra.formats) decides what is skipped: an empty side, identical responses,
    a repeated prompt, sides that continue different conversations; the counts say how many."""
    from zebra.formats import convert_records

    examples, counts = convert_records(records, "dpo", source=where)
    kept_records = _kept(records, examples)
    rows = []
    for record, example in zip(kept_records, examples):
        pair = record.get("most_similar_pair") or [None, None]
        row = {"prompt": example["prompt"], "chosen": example["chosen"], "rejected": example["rejected"],
               "chosen_model": pair[0], "rejected_model": pair[1]}
        for name in PROVENANCE:
            value = record.get(name)
            if name == "prompt_id":
                row[name] = value
            elif name == "kinship_rank":
                row[name] = int(value) if _number(value) is not None else None
            else:
                row[name] = _number(value)
        # the baseline's records carry their scores; otherwise the pool's label of each response
        score_c, score_r = _number(record.get("score_chosen")), _number(record.get("score_rejected"))
        found_c = found_r = None
        if labels is not None and pair[0] is not None:
            pid = record.get("prompt_id") or ""
            found_c = labels.get(_response_key(pid, pair[0], example["chosen"][0]["content"]))
            found_r = labels.get(_response_key(pid, pair[1], example["rejected"][0]["content"]))
        row.update(score_chosen=score_c if score_c is not None else (_number(found_c[0]) if found_c else None),
                   score_rejected=score_r if score_r is not None else (_number(found_r[0]) if found_r else None),
                   rating_chosen=_number(found_c[1]) if found_c else None,
                   rating_rejected=_number(found_r[1]) if found_r else None)
        rows.append(row)
    # a label the pool does not have is no column pair (AlpacaEval's pool has no aspect ratings);
    # a pool with scores gives every config its score columns, null where a response has none
    has_scores = bool(labels) and any(not math.isnan(v[0]) for v in labels.values())
    for pair_names in (("score_chosen", "score_rejected"), ("rating_chosen", "rating_rejected")):
        if not (pair_names[0] == "score_chosen" and has_scores) and all(r[name] is None for r in rows for name in pair_names):
            for r in rows:
                for name in pair_names:
                    del r[name]
    return rows, counts


def _kept(records: list[dict], examples: list[dict]) -> list[dict]:
    """The records convert_records kept, in order (it keeps the first of each prompt)."""
    from zebra.formats import convert_record, prompt_key

    kept, seen = [], set()
    for row, record in enumerate(records):
        result = convert_record(record, "dpo", where=f"row {row}")
        if isinstance(result, str):
            continue
        key = prompt_key(record, result)
        if key in seen:
            continue
        seen.add(key)
        kept.append(record)
    if len(kept) != len(examples):  # the two walks are the same rule; a mismatch is a bug here
        raise PublishError(f"internal: {len(kept)} records kept for {len(examples)} examples")
    return kept


def write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    messages = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
    types = {"prompt": messages, "chosen": messages, "rejected": messages, "chosen_model": pa.string(),
             "rejected_model": pa.string(), "prompt_id": pa.string(), "kinship_rank": pa.int64()}
    names = list(rows[0]) if rows else ["prompt", "chosen", "rejected"]
    schema = pa.schema([(n, types.get(n, pa.float64())) for n in names])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


# ----------------------------------------------------------------------------- the card


def size_category(n: int) -> str:
    for bound, name in SIZE_CATEGORIES:
        if n < bound:
            return name
    return "n>10M"


def binarize_command(meta: dict) -> str:
    """The command that made a binarize output, rebuilt from its meta's settings (or taken from a
    `command` the meta records)."""
    if isinstance(meta.get("command"), str):
        return meta["command"]
    s = meta["settings"]
    script, flags, _ = SCRIPTS[s["strategy"]]
    args = ["python", script, *flags]
    if s.get("data") is not None:
        args += ["--data", str(s["data"])]
    args += ["--behaviour-table", str(s["benchmark"])]
    for key, flag in (("tau", "--tau"), ("rank_weight", "--rank-weight"), ("similarity_weight", "--similarity-weight"),
                      ("score", "--score"), ("limit", "--limit"), ("max_entropy", "--max-entropy"),
                      ("entropy_quantile", "--entropy-quantile"), ("reliability_temperature", "--reliability-temperature"),
                      ("min_mb_sup_gap", "--min-mb-sup-gap")):
        if s.get(key) is not None:
            args += [flag, str(s[key])]
    if s["strategy"] == "baseline":
        args += ["--seed", str(s["seed"])]
        if s.get("drop_sources") == []:
            args.append("--keep-truthful-qa")
        if s.get("only_rated"):
            args.append("--only-rated")
    pool = s.get("pool") or {}
    if pool.get("format") not in (None, "auto"):
        args += ["--format", pool["format"]]
    for key in POOL_FLAGS[1:]:
        if pool.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(pool[key])]
    args += [f"--{key.replace('_', '-')}" for key in POOL_SWITCHES if pool.get(key)]
    if pool.get("models_per_prompt") is not None:
        args += ["--models-per-prompt", str(pool["models_per_prompt"])]
        if s["strategy"] != "baseline":  # the draw's seed; the baseline's --seed is already there
            args += ["--seed", str(pool.get("seed", 42))]
    args += ["--output", str(s["output"])]
    return shlex.join(args)


def agreement_rows(summary: Any, where: str) -> dict[str, dict]:
    """`label → {decided, records, agreement, ci}` from analyze.py's agreement output: its
    agreement_study.json (`rows`) or a summary_*.json (`results.agreement.study`). Fields that
    are absent stay absent; a file with neither is an error naming it."""
    rows = None
    if isinstance(summary, dict):
        rows = summary.get("rows")
        if rows is None:
            results = summary.get("results")
            agreement = results.get("agreement") if isinstance(results, dict) else None
            rows = agreement.get("study") if isinstance(agreement, dict) else None
    if not isinstance(rows, dict) or not rows or not all(isinstance(v, dict) for v in rows.values()):
        raise PublishError(f"{where}: no agreement rows (`rows`, or `results.agreement.study`); pass analyze.py "
                           "agreement's agreement_study.json or summary_agreement.json")
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Card:
    """What the card says, gathered by publish.py."""

    sources: list[Source]
    rows: dict[str, int]  # config → rows written
    conversion: dict[str, dict]  # config → convert_records counts
    labels: dict[str, list[str]]  # config → label columns present
    licence: tuple[str, str]
    table: dict  # path, sha256, text (None when unreadable)
    pretty_name: str
    language: str
    repo: str | None = None
    agreement: dict | None = None
    agreement_source: str | None = None
    extra_tags: list[str] = field(default_factory=list)


def card_yaml(card: Card) -> dict:
    total = sum(card.rows.values())
    return {
        "license": card.licence[0],
        "language": [card.language],
        "pretty_name": card.pretty_name,
        "size_categories": [size_category(total)],
        "task_categories": ["text-generation"],
        "tags": ["dpo", "preference", "trl", "zebra", *card.extra_tags],
        "configs": [{"config_name": s.config, "data_files": [{"split": "train", "path": f"{s.config}/train.parquet"}]}
                    for s in card.sources],
    }


def card_text(card: Card) -> str:
    import yaml

    name = card.repo or "path/to/this/folder"
    first = card.sources[0].config
    parts = ["---\n" + yaml.safe_dump(card_yaml(card), sort_keys=False, allow_unicode=True) + "---", ""]
    parts += [f"# {card.pretty_name}", "",
              "Preference pairs built with **ZEBRA** (*Leveraging Model-Behavioral Knowledge for Zero-Annotation "
              "Preference Dataset Construction*, EMNLP 2025): each response is judged only by its origin model's "
              "public benchmark scores — MB-SUP (how good a model is: its mean min–max-normalised score) and MB-SIM "
              "(how alike two models are: the cosine of their normalised score vectors). No instance is labelled "
              "by ZEBRA's strategies; the `baseline` config, where present, is the instance-labelled RLAIF "
              "comparison.", ""]
    parts += ["## Configs", "", _table(
        ["config", "strategy", "pairs", "τ", "rank_weight / similarity_weight", "made from", "sha256 of that file"],
        [[s.config, SCRIPTS[s.config][2], card.rows[s.config], str(s.meta["settings"].get("tau", "–")),
          (f"{s.meta['settings']['rank_weight']} / {s.meta['settings']['similarity_weight']}"
           if "rank_weight" in s.meta["settings"] else "–"), f"`{s.path.name}`", f"`{s.sha256[:16]}…`"]
         for s in card.sources]), ""]
    parts += ["## Use", "", "```python", "from datasets import load_dataset", "",
              f'pairs = load_dataset("{name}", "{first}", split="train")', "", "# trl's DPOTrainer takes it as it is "
              "(conversational preference, explicit prompt)", "from trl import DPOConfig, DPOTrainer",
              "trainer = DPOTrainer(model=model, args=DPOConfig(output_dir=\"out\"), train_dataset=pairs, "
              "processing_class=tokenizer)", "```", ""]
    label_cols = sorted({c for cols in card.labels.values() for c in cols})
    columns = [
        ["`prompt`", "the user turn, `[{role: user, content}]`"],
        ["`chosen`, `rejected`", "the two responses, `[{role: assistant, content}]`"],
        ["`chosen_model`, `rejected_model`", "the models that wrote them (behaviour-table names)"],
        ["`mb_sup_chosen`, `mb_sup_rejected`", "MB-SUP of the two models (paper eq. 1)"],
        ["`mb_sim`", "MB-SIM of the pair (cosine of normalised score vectors)"],
        ["`kinship_rank`", "rank (1 = closest) of the rejected model among the chosen model's rivals by MB-SIM"],
        ["`agreement`, `entropy`, `weight`", "the six benchmarks' vote on the pair, its entropy (nats), and a "
         "softmax weight (T = 0.2) for weighted DPO"],
        ["`prompt_id`", "sha256 of the prompt"],
    ]
    if "score_chosen" in label_cols:
        columns.append(["`score_chosen`, `score_rejected`", "the pool's instance label of each response (its "
                        "`overall_score`: GPT-4's score in UltraFeedback, AlpacaEval's judge preference 1–2 in the "
                        "shipped pool); null where the pool had none. ZEBRA did not use them"])
    if "rating_chosen" in label_cols:
        columns.append(["`rating_chosen`, `rating_rejected`", "mean of UltraFeedback's four GPT-4 aspect ratings"])
    parts += ["## Columns", "", _table(["column", "meaning"], columns), ""]
    parts += ["## How it was made", "", "Each config is one binarize run; its command, rebuilt from the run's "
              "`.meta.json` (kept in `provenance/`):", "", "```bash"]
    parts += [binarize_command(s.meta) for s in card.sources]
    parts += ["```", ""]
    t = card.table
    sha_note = f"sha256 `{t['sha256']}`" if t.get("sha256") else "not readable here"
    parts += [f"Behaviour table: `{t['path']}` ({sha_note}); a copy is `behaviour_table.csv`."
              + (f" Models excluded for a missing score: {', '.join(t['excluded'])}." if t.get("excluded") else ""), ""]
    mb = card.sources[0].meta.get("behaviour_table", {}).get("mb_sup") or {}
    if mb:
        parts += ["MB-SUP per model:", "", _table(["model", "MB-SUP"], [[m, v] for m, v in
                                                                    sorted(mb.items(), key=lambda kv: -kv[1])]), ""]
    if t.get("text") is not None:
        parts += ["<details><summary>behaviour_table.csv</summary>", "", "```csv", t["text"].rstrip("\n"), "```", "",
                  "</details>", ""]
    count_rows = []
    for s in card.sources:
        c = s.meta.get("counts", {})
        skipped = ", ".join(f"{k} {v}" for k, v in (c.get("rows_skipped") or {}).items() if v) or "none"
        conv = card.conversion[s.config]
        dropped = ", ".join(f"{k.removeprefix('skipped_')} {v}" for k, v in conv.items() if k.startswith("skipped_") and v) or "none"
        count_rows.append([s.config, c.get("rows_read"), c.get("rows_written"), skipped, dropped, card.rows[s.config]])
    parts += ["## Counts", "", "Prompts read and written by each binarize run, prompts it skipped by reason, "
              "records left out when converting to trl's format, and the rows published:", "",
              _table(["config", "read", "written", "skipped by binarize", "left out here", "rows"], count_rows), ""]
    decon = [(s.config, s.meta["decontamination"]) for s in card.sources if isinstance(s.meta.get("decontamination"), dict)]
    parts += ["## Decontamination", ""]
    if decon:
        parts += ["Prompts holding an evaluation benchmark's test item were removed by `decontaminate.py "
                  "--drop-contaminated` (n-gram overlap, open-instruct's rule):", "",
                  _table(["config", "n", "threshold", "test items from", "removed"],
                         [[c, d.get("ngram"), d.get("threshold"), d.get("eval_dir"), d.get("removed")] for c, d in decon]), ""]
    else:
        parts += ["Not run on these files. `python decontaminate.py --data FILE --eval-dir DIR --drop-contaminated "
                  "--output CLEAN` checks them against the six benchmarks' test items and removes what it finds.", ""]
    if card.agreement is not None:
        parts += ["## Agreement with GPT-4", "", f"From `{card.agreement_source}` (`analyze.py agreement`): how often "
                  "the chosen response is the one the pool's GPT-4 judge preferred, over the pairs it decides.", "",
                  _table(["run", "decided", "pairs", "agrees", "95% CI"],
                         [[label, r.get("decided"), r.get("records"), r.get("agreement"),
                           "–" if not isinstance(r.get("ci"), list) else " – ".join(_fmt(x) for x in r["ci"])]
                          for label, r in card.agreement.items()]), ""]
    parts += ["## Licence", "", f"`{card.licence[0]}`: {card.licence[1]}.", "", "## Citation", "", "```bibtex",
              CITATION, "```", ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- the folder


def check_target(output_dir: Path) -> None:
    """A new folder, an empty one, or one publish.py wrote before (its publish.json) may be
    (re)placed; anything else is someone's data."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise PublishError(f"--output-dir {output_dir} is a file; pass a folder")
        if any(output_dir.iterdir()) and not (output_dir / MARKER).is_file():
            raise PublishError(f"--output-dir {output_dir} is a non-empty folder publish.py did not write; "
                               "choose a new folder")


def write_dataset(output_dir: Path, files: dict[str, bytes | Path], tables: dict[str, list[dict]]) -> None:
    """Build the whole folder beside `output_dir` and rename it into place: a failed or interrupted
    run leaves the earlier folder (or none), never a half one. `files`: relative path → bytes or a
    file to copy; `tables`: config → rows, written as `<config>/train.parquet`."""
    from zebra.records import make_parent

    check_target(output_dir)
    make_parent(output_dir)
    tmp = output_dir.with_name(f".{output_dir.name}.tmp-{os.getpid()}")
    old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for config, rows in tables.items():
            (tmp / config).mkdir()
            write_parquet(rows, tmp / config / "train.parquet")
        for rel, content in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
        if output_dir.exists():
            os.replace(output_dir, old)
        os.replace(tmp, output_dir)
    except OSError as err:
        if old.exists() and not output_dir.exists():
            os.replace(old, output_dir)
        raise PublishError(f"--output-dir {output_dir}: cannot write ({err.strerror or err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def push_to_hub(folder: Path, repo: str, private: bool) -> str:
    """Create the dataset repo (if needed) and upload the folder; returns the repo's URL."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="dataset",
                          commit_message="ZEBRA preference pairs (publish.py)")
    except Exception as err:  # network, authentication, a repo name the hub refuses
        raise PublishError(f"--push-to-hub {repo}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
                           f"(the folder {folder} is written; `huggingface-cli login` and retry)") from None
    return str(url)
