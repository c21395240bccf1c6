r"""Decontamination: which prompts (and responses) of a pool or a binarize output contain a test item
of the six evaluation benchmarks; optionally a copy of a binarize output without them.

    # the shipped pool against the shipped real subsets (only 24 items per benchmark: a smoke check)
    python decontaminate.py --output-dir out/decontamination

    # against the full test sets of SPEC §11's realdata folder (MMLU-Pro 12,032, HellaSwag 10,042, ...)
    python decontaminate.py --eval-dir ../shared/realdata/eval --output-dir out/decontamination_full

    # responses too, and a copy of the SUP pairs without the contaminated prompts (counted in its meta)
    python decontaminate.py --data out/demo/sup.json --eval-dir ../shared/realdata/eval --responses \
        --drop-contaminated --output out/demo_clean/sup.json --output-dir out/decontamination_sup

    # full UltraFeedback against the hub's test sets (a machine that reaches the hub)
    python decontaminate.py --data openbmb/UltraFeedback --eval-dir hub --output-dir out/decontamination_uf

An item is in a text when ≥ --threshold of its tokens lie in n-grams (--ngram tokens) the text
shares with it, after NFKC, lower-casing and splitting on anything but letters and digits
(open-instruct's rule; zebra/decontamination.py). Writes OUTPUT_DIR/decontamination.json
(settings, and per benchmark and per pool source: items, contaminated prompts, matching item ids)
and OUTPUT_DIR/matches.csv (one row per prompt × item match, with its coverage).
"""

import argparse
import csv
import io
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from zebra.errors import ZebraError
from zebra.jsonio import read_json

DATA = "data/alpaca_eval"  # the shipped real pool (or a binarize output: a file with its .meta.json)
EVAL_DIR = "data/eval"  # the shipped real subsets, 24 items each; ../shared/realdata/eval has the full sets
BENCHMARKS = "mmlu_stem,mmlu_pro,arc_easy,arc_challenge,hellaswag,ifeval"  # the behaviour table's six
NGRAM = 8  # open-instruct / Tulu 3 (GPT-3 used 13): long enough that common phrases do not match
THRESHOLD = 0.5  # share of a test item's tokens a text must cover (open-instruct's --match_threshold)
OUTPUT_DIR = "out/decontamination"
POOL_SEED = 42  # only --models-per-prompt's draw

log = logging.getLogger("decontaminate")


def is_records(data: str) -> bool:
    """A binarize output: a .json/.jsonl/.parquet file with its .meta.json beside it."""
    path = Path(data)
    return path.is_file() and path.suffix in (".json", ".jsonl", ".parquet") and Path(f"{path}.meta.json").is_file()


def eval_items(eval_dir: str, names: list[str]) -> dict:
    """Every item of each benchmark: the hub, a realdata/eval folder, or evaluate.py's --eval-dir layout."""
    from zebra.benchmarks import REAL_SOURCES, load_items, load_real_items

    items = {}
    for name in names:
        if eval_dir == "hub":
            items[name] = load_items(name, None)
        elif (Path(eval_dir) / REAL_SOURCES[name]).is_file():
            items[name] = load_real_items(name, eval_dir)
        else:
            items[name] = load_items(name, eval_dir)
    return items


def pool_batches(args, responses: bool):
    """The prompts (and responses) of a pool or UltraFeedback file, one Arrow batch at a time, with
    their prompt ids and sources: only one batch of texts is held at once."""
    import numpy as np

    from zebra.cli import pool_options
    from zebra.data import iter_batches, locate, open_data, to_batch
    from zebra.decontamination import TrainingText

    ds = open_data(locate(args.data, pool_options(args)), limit=args.limit).dataset
    for arrow_batch in iter_batches(ds):
        b = to_batch(arrow_batch)
        texts = []
        for i, (pid, prompt) in enumerate(zip(b.prompt_ids, b.instruction)):
            source = str(b.source[i]) if b.source[i] is not None else "(no source)"
            texts.append(TrainingText(pid, source, "prompt", prompt))
            if responses:
                slots = np.flatnonzero(b.pos[i] >= 0)
                for slot, text in zip(slots, b.texts(np.full(slots.size, i), slots)):
                    texts.append(TrainingText(pid, source, f"response:{b.model[i, slot]}", text))
        yield texts


def record_texts(records: list, responses: bool, where: str) -> list:
    from zebra.data import prompt_id
    from zebra.decontamination import TrainingText

    texts = []
    for row, r in enumerate(records):
        if not isinstance(r, dict) or not isinstance(r.get("prompt"), str):
            raise ZebraError(f"{where} record {row}: not a binarize record with a `prompt` string")
        pid = r.get("prompt_id") or prompt_id(r["prompt"])
        texts.append(TrainingText(pid, "(binarize output)", "prompt", r["prompt"]))
        if responses:
            for side in ("chosen", "rejected"):
                messages = r.get(side)
                if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
                    texts.append(TrainingText(pid, "(binarize output)", side, str(messages[-1].get("content") or "")))
    return texts


def write_csv_atomic(path: Path, rows: list[dict], columns: list[str]) -> None:
    """The CSV written to a temporary file beside `path` and renamed: never a half file."""
    from zebra.records import write_text_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def main() -> None:
    from zebra.cli import add_pool_flags

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DATA, help="a pool or UltraFeedback file/folder/hub id, or a binarize output "
                    "(a .json/.jsonl/.parquet with its .meta.json) (default: %(default)s)")
    ap.add_argument("--eval-dir", default=EVAL_DIR, help="the benchmarks' test items: a realdata/eval folder (SPEC §11), "
                    "evaluate.py's --eval-dir layout, or `hub` for the hub ids (default: %(default)s, 24 items each)")
    ap.add_argument("--benchmarks", default=BENCHMARKS, help="comma-separated (default: %(default)s)")
    ap.add_argument("--ngram", type=int, default=NGRAM, help="n-gram length in normalised tokens (default: %(default)s)")
    ap.add_argument("--threshold", type=float, default=THRESHOLD,
                    help="share of an item's tokens inside shared n-grams that makes a match, (0, 1] (default: %(default)s)")
    ap.add_argument("--responses", action="store_true", help="check responses (chosen/rejected) too, not only prompts")
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts (default: all)")
    ap.add_argument("--output-dir", default=OUTPUT_DIR, help="report folder: decontamination.json, matches.csv (default: %(default)s)")
    ap.add_argument("--drop-contaminated", action="store_true",
                    help="write --output: the binarize output --data without the contaminated prompts, its meta counting them")
    ap.add_argument("--output", default=None, help="with --drop-contaminated: .json, .jsonl or .parquet")
    ap.add_argument("--seed", type=int, default=POOL_SEED, help="seeds --models-per-prompt's draw only (default: %(default)s)")
    add_pool_flags(ap)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        run(args)
    except ZebraError as err:
        sys.exit(f"error: {err}")


def run(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from zebra import decontamination as dc
    from zebra.benchmarks import parse_benchmarks
    from zebra.records import RecordWriter, read_records, write_json_atomic
    from zebra.settings import check_number, check_output_dir, check_output_path

    t0 = time.perf_counter()
    dc.check_settings(args.ngram, args.threshold)
    check_number("--limit", args.limit, low=1, integer=True, optional=True)
    check_number("--seed", args.seed, low=0, high=2**63 - 1, integer=True)
    names = parse_benchmarks(args.benchmarks)
    records_in = is_records(args.data)
    if args.drop_contaminated and not (records_in and args.output):
        raise ZebraError("--drop-contaminated filters a binarize output: pass one as --data (a file with its "
                         ".meta.json) and name the copy with --output")
    if args.output and not args.drop_contaminated:
        raise ZebraError("--output is the filtered copy of --drop-contaminated; add that flag or drop --output")
    inputs = [args.data, None if args.eval_dir == "hub" else args.eval_dir, args.model_names, args.judgments]
    if records_in:
        inputs.append(f"{args.data}.meta.json")
    else:  # every file the pool consists of, pool.json's responses, names and judgments included
        from zebra.cli import pool_options
        from zebra.data import locate

        inputs += [str(f) for f in locate(args.data, pool_options(args)).files]
    out_dir = Path(args.output_dir)
    check_output_dir(out_dir)
    outputs = [out_dir / "decontamination.json", out_dir / "matches.csv"]
    if args.output:
        outputs += [Path(args.output), Path(f"{args.output}.meta.json")]
    for path in outputs:
        check_output_path(path, inputs, flag="--output" if args.output and str(path).startswith(args.output) else "--output-dir")

    items = eval_items(args.eval_dir, names)
    dc.require_items(items, f"--eval-dir {args.eval_dir}")
    index = dc.build_index(items, args.ngram)
    if records_in:
        records = read_records(args.data)
        if args.limit is not None:
            records = records[: args.limit]
        batches = [record_texts(records, args.responses, args.data)]
    else:
        batches = pool_batches(args, args.responses)
    texts, parts = [], []
    for batch in tqdm(batches, desc="n-gram lookup", unit="batch"):
        found = dc.find_matches(index, [t.text for t in batch], args.threshold)
        parts.append(dc.Matches(found.text + len(texts), found.item, found.coverage))
        texts += [replace(t, text=None) for t in batch]  # the report needs ids and sources, not texts
    matches = dc.concat_matches(parts)
    report = dc.report(index, texts, matches)
    settings = {"data": args.data, "eval_dir": args.eval_dir, "benchmarks": names, "ngram": args.ngram,
                "threshold": args.threshold, "responses": args.responses, "limit": args.limit,
                "normalisation": "NFKC, lower case, tokens = runs of letters/digits",
                "item_fields": "question, and the options joined (multiple choice); score = mean covered share over fields",
                "items_loaded": index.counts()}
    result = {"settings": settings, **report, "seconds": None}
    if args.drop_contaminated:
        bad = dc.contaminated_prompts(texts, matches)
        kept, removed = dc.drop_contaminated(records, bad)
        meta = read_json(f"{args.data}.meta.json", "meta file", expect=dict)
        meta = dc.filtered_meta(meta, kept, removed, args.output, {**settings, "source_records": args.data,
                                                                     "benchmarks_report": report["benchmarks"]})
        extra = dc.extra_fields(records)
        with RecordWriter(args.output, extra, deferred=True) as writer:
            writer.write(kept)
        writer.commit(meta)
        result["dropped"] = {"output": args.output, "records_read": len(records), "removed": len(removed),
                             "written": len(kept)}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    write_csv_atomic(outputs[1], dc.match_rows(index, texts, matches),
                     ["prompt_id", "source", "field", "benchmark", "item_id", "coverage"])
    write_json_atomic(outputs[0], result)
    per = ", ".join(f"{name} {b['prompts_contaminated']} prompts/{len(b['items_matched'])} items"
                    for name, b in report["benchmarks"].items())
    print(f"decontaminate: {report['prompts_contaminated']} of {report['prompts']} prompts contain a test item "
          f"({per}; n={args.ngram}, threshold {args.threshold}) -> {outputs[0]}")
    if args.drop_contaminated:
        print(f"wrote {len(kept)} of {len(records)} records to {args.output} ({len(removed)} contaminated removed)")


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C: one line, exit 130
    main_guard(main)
