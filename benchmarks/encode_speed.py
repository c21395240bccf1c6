r"""CPU time of writing records as JSON lines on real text: the Arrow encoder against json.dumps.

    # the README's numbers ("Speed"); without --output it writes out/bench/encode_speed.json
    python -m benchmarks.encode_speed --output benchmarks/results/encode_speed.json

The made-up responses of benchmarks/binarize_speed.py hold no character JSON must escape; real
ones do (newlines, quotes, tabs), and escaping is most of encoding. So this measures on the
shipped real pool, data/alpaca_eval/model_outputs.jsonl (4,836 AlpacaEval responses of 12 models):
records shaped as the binarize scripts write them (prompt, prompt_id, most_similar_pair, chosen
and rejected message lists, the number columns), each prompt's response of one model as chosen
and of the next as rejected, in batches of 4,096 records as RecordWriter gets them.

  arrow      zebra.records.json_lines on the Arrow table (what a binarize run does)
  json.dumps json.dumps of each record's dict, the table's rows as Python objects (to_pylist
             included: it is what a per-record writer must make first)

Both are timed in one process, taking turns, `--repeats` times; the medians of CPU seconds and
their ratio are reported, and the two outputs are checked to be the same bytes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks import at_least_one

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/encode_speed.py` as well as `-m`
    sys.path.insert(0, str(ROOT))

POOL = ROOT / "data" / "alpaca_eval" / "model_outputs.jsonl"
TRACKED = "benchmarks/results/encode_speed.json"  # the README's numbers: written only when --output names it
SCRATCH = "out/bench/encode_speed.json"
REPEATS = 7
BATCH = 4096  # RecordWriter gets a batch of this many records (BinarizeConfig's default)


def record_tables(path: Path):
    """The pool's records as binarize writes them, in Arrow tables of BATCH rows."""
    import numpy as np
    import pyarrow as pa

    from zebra.data import prompt_id
    from zebra.pipeline import _messages_array

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["instruction"], []).append(r)
    pairs = [(p, a, b) for p, answers in by_prompt.items() for a, b in zip(answers, answers[1:])]
    # number columns as a run has them: one MB-SUP per model, one MB-SIM per pair of models
    models = sorted({r["generator"] for r in rows})
    sup = {m: 0.30 + 0.05 * i for i, m in enumerate(models)}
    tables = []
    for start in range(0, len(pairs), BATCH):
        part = pairs[start:start + BATCH]
        prompts = pa.array([p for p, _, _ in part], pa.string())
        n = len(part)
        tables.append(pa.table({
            "prompt": prompts,
            "prompt_id": pa.array([prompt_id(p) for p, _, _ in part], pa.string()),
            "most_similar_pair": pa.array([[a["generator"], b["generator"]] for _, a, b in part], pa.list_(pa.string())),
            "chosen": _messages_array(prompts, pa.array([a["output"] for _, a, _ in part], pa.string())),
            "rejected": _messages_array(prompts, pa.array([b["output"] for _, _, b in part], pa.string())),
            "kinship_rank": pa.array(np.arange(n) % 3 + 1, pa.int64()),
            "mb_sup_chosen": pa.array([sup[a["generator"]] for _, a, _ in part]),
            "mb_sup_rejected": pa.array([sup[b["generator"]] for _, _, b in part]),
            "mb_sim": pa.array([1 - abs(sup[a["generator"]] - sup[b["generator"]]) for _, a, b in part]),
        }))
    return tables, len(rows)


def arrow(tables) -> bytes:
    from zebra.records import _joined_bytes, json_lines

    return b"".join(bytes(_joined_bytes(json_lines(t, "\n"))) for t in tables)


def dumps(tables) -> bytes:
    return b"".join("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in t.to_pylist()).encode("utf-8")
                    for t in tables)


def measure(repeats: int) -> dict:
    tables, responses = record_tables(POOL)
    cpu: dict[str, list[float]] = {"arrow": [], "json.dumps": []}
    outputs = {}
    for _ in range(repeats):  # taking turns: load from elsewhere moves both alike
        for name, encode in (("arrow", arrow), ("json.dumps", dumps)):
            t0 = time.process_time()
            outputs[name] = encode(tables)
            cpu[name].append(time.process_time() - t0)
    chosen = [m[1]["content"] for t in tables for m in t.column("chosen").to_pylist()]
    med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "data": str(POOL.relative_to(ROOT)), "responses_in_pool": responses, "records": sum(t.num_rows for t in tables),
        "output_mb": round(len(outputs["arrow"]) / 1e6, 2),
        "chosen_responses_with": {name: sum(c in r for r in chosen) for name, c in (("newline", "\n"), ("quote", '"'), ("tab", "\t"))},
        "same_bytes": outputs["arrow"] == outputs["json.dumps"],
        "repeats": repeats,
        "cpu_seconds": {k: round(v, 4) for k, v in med.items()},
        "cpu_seconds_each": {k: [round(x, 4) for x in v] for k, v in cpu.items()},
        "json_dumps_over_arrow": round(med["json.dumps"] / med["arrow"], 2),
        "mb_per_cpu_second": {k: round(len(outputs["arrow"]) / 1e6 / v, 1) for k, v in med.items()},
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=at_least_one, default=REPEATS, help="turns of each encoder, medians reported (default: %(default)s)")
    ap.add_argument("--output", default=SCRATCH, help=f"result JSON (default: %(default)s; the README's is {TRACKED})")
    args = ap.parse_args(argv)
    import os

    from benchmarks.analyze_memory import git_commit
    from benchmarks.binarize_speed import machine, versions
    from zebra.records import write_json_atomic

    load = os.getloadavg()
    result = {**measure(args.repeats), "machine": machine(), "versions": versions(), "code": git_commit(ROOT),
              "load_average_before": [round(x, 2) for x in load]}
    write_json_atomic(ROOT / args.output, result)  # an absolute --output stays itself
    print(json.dumps({k: result[k] for k in ("records", "output_mb", "same_bytes", "cpu_seconds", "json_dumps_over_arrow")}))
    return result


if __name__ == "__main__":
    main()
