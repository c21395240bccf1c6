r"""A long-format pool against the same data in UltraFeedback form: peak memory and CPU time.

    # the recorded run (writes benchmarks/results/long_pool_speed.json; run times: README, "Speed")
    python -m benchmarks.long_pool_speed
    # a quick look (writes out/bench_long/long_pool_speed.partial.json)
    python -m benchmarks.long_pool_speed --rows 4000 --response-words 40

The data: make_ultrafeedback.py's synthetic rows, each written twice with the same prompts and
responses, once as UltraFeedback rows (source, instruction, models, completions of {model,
response}) and once as a long-format pool (one JSON line per response: instruction, generator,
output, dataset). Rows the long form cannot hold the same way are left out of both: a prompt
that is not text, a prompt seen before, a model's second response to a prompt.

Each run is a fresh Python process running the SUP pipeline (zebra.pipeline.binarize, the work of
binarize_score.py) on one form, its CPU time (user + system) and peak RSS from the kernel
(`wait4`). Cold = an empty `datasets` cache (a fresh HF_DATASETS_CACHE: the UltraFeedback JSON is
parsed into Arrow, the pool converted); warm = the cache filled by the cold run. Both forms must
give the same pairs (checked in a child process: the same (prompt, chosen, rejected) texts).
The ratios (long ÷ UltraFeedback) are within one run on one machine: each form and mode runs
`--repeat` times (3), the forms taking turns, and the run of median CPU time is reported with every
run's CPU time beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import at_least_one
from benchmarks.binarize_speed import machine, make_data, versions

ROOT = Path(__file__).resolve().parent.parent
ROWS = (16_000, 64_000)  # prompts of each size (63,967: UltraFeedback's); ~4 responses each
RESPONSE_WORDS = 220  # ~1,300 characters a response, as binarize_speed
REPEAT = 3  # CPU times vary by about 10 % between runs on a shared 2-vCPU machine: the median of 3
WORK_DIR = "out/bench_long"
OUTPUT = "benchmarks/results/long_pool_speed.json"  # tracked: the default run only


def prepare(raw: str, uf: str, long: str) -> dict[str, Any]:
    """Write the two forms of the same data from make_ultrafeedback.py's rows (child process)."""
    from zebra.jsonio import iter_json_record_chunks

    seen: set[str] = set()
    prompts = responses = 0
    with open(uf, "w", encoding="utf-8") as fu, open(long, "w", encoding="utf-8") as fl:
        for chunk in iter_json_record_chunks(raw, rows=4096):
            for _, row in chunk:
                text = row.get("instruction")
                if not isinstance(text, str) or not text.strip() or text in seen:
                    continue
                seen.add(text)
                completions, models = [], set()
                for c in row.get("completions") or []:
                    if not isinstance(c.get("model"), str) or c["model"] in models:
                        continue
                    models.add(c["model"])
                    completions.append({"model": c["model"], "response": c.get("response") or ""})
                if not completions:
                    continue
                prompts += 1
                responses += len(completions)
                fu.write(json.dumps({"source": row.get("source"), "instruction": text,
                                     "models": [c["model"] for c in completions], "completions": completions}) + "\n")
                for c in completions:
                    fl.write(json.dumps({"instruction": text, "generator": c["model"], "output": c["response"],
                                         "dataset": row.get("source")}) + "\n")
    return {"prompts": prompts, "responses": responses, "uf_bytes": os.path.getsize(uf),
            "long_bytes": os.path.getsize(long)}


def worker_sup(data: str, output: str) -> dict[str, Any]:
    from zebra.pipeline import BinarizeConfig, binarize

    meta = binarize(BinarizeConfig("sup", output, data, progress=False))
    return {"rows_read": meta["counts"]["rows_read"], "rows_written": meta["counts"]["rows_written"]}


def worker_same_pairs(a: str, b: str) -> dict[str, Any]:
    from zebra.records import read_records

    def pairs(path: str) -> set:
        return {(r["prompt"], r["chosen"][-1]["content"], r["rejected"][-1]["content"]) for r in read_records(path)}

    pa_, pb = pairs(a), pairs(b)
    return {"same": pa_ == pb, "pairs": len(pa_)}


def child(args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, float]]:
    """Run `python -m benchmarks.long_pool_speed --worker …` and return (its result, its resources)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result = Path(fh.name)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.long_pool_speed", *args, "--result", str(result)],
                            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: worker {args} failed")
    out = json.loads(result.read_text())
    result.unlink()
    return out, {"wall_seconds": round(wall, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                 "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def median_run(tries: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median CPU time (the upper one of two), with every run's CPU time beside it."""
    ranked = sorted(tries, key=lambda t: t["cpu_seconds"])
    return {**ranked[len(ranked) // 2], "cpu_seconds_each": [t["cpu_seconds"] for t in tries]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = ROOT / args.work_dir
    folder.mkdir(parents=True, exist_ok=True)
    sizes = []
    for rows in args.rows:
        raw = folder / f"raw-{rows}-{args.response_words}.jsonl"
        make_data(raw, rows, args.response_words, quiet=True)
        uf, long = folder / f"uf-{rows}.jsonl", folder / f"long-{rows}.jsonl"
        data, _ = child(["--worker", "prepare", "--data", str(raw), "--uf", str(uf), "--long", str(long)])
        tries: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeat):  # the forms take turns, so a drift of the machine hits both alike
            for form, path in (("ultrafeedback", uf), ("long", long)):
                cache = Path(tempfile.mkdtemp(prefix="zebra-bench-cache-", dir=folder))
                try:
                    for mode in ("cold", "warm"):
                        output = folder / f"sup-{form}-{rows}.jsonl"
                        out, usage = child(["--worker", "sup", "--data", str(path), "--output", str(output)],
                                           {"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
                        tries.setdefault(f"{form} {mode}", []).append({**usage, **out})
                        print(f"{rows} prompts, {form} {mode}: {usage}", flush=True)
                finally:
                    shutil.rmtree(cache, ignore_errors=True)
        runs = {name: median_run(found) for name, found in tries.items()}
        same, _ = child(["--worker", "same_pairs", "--data", str(folder / f"sup-ultrafeedback-{rows}.jsonl"),
                         "--uf", str(folder / f"sup-long-{rows}.jsonl")])
        ratios = {mode: {"cpu": round(runs[f"long {mode}"]["cpu_seconds"] / runs[f"ultrafeedback {mode}"]["cpu_seconds"], 2),
                         "peak_rss": round(runs[f"long {mode}"]["peak_rss_mb"] / runs[f"ultrafeedback {mode}"]["peak_rss_mb"], 2)}
                  for mode in ("cold", "warm")}
        sizes.append({"rows": rows, "data": data, "runs": runs, "long_over_ultrafeedback": ratios, "same_pairs": same})
    return {"sizes": sizes, "response_words": args.response_words, "repeat": args.repeat, "machine": machine(),
            "versions": versions()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=at_least_one, nargs="+", default=list(ROWS), help="prompts of each size (default: %(default)s)")
    ap.add_argument("--response-words", type=at_least_one, default=RESPONSE_WORDS, help="(default: %(default)s)")
    ap.add_argument("--repeat", type=at_least_one, default=REPEAT,
                    help="runs of each form and mode; the median run is reported (default: %(default)s)")
    ap.add_argument("--work-dir", default=WORK_DIR, help="generated data, caches, outputs (default: %(default)s)")
    ap.add_argument("--worker", choices=["prepare", "sup", "same_pairs"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--uf", help=argparse.SUPPRESS)
    ap.add_argument("--long", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out = (prepare(args.data, args.uf, args.long) if args.worker == "prepare" else
               worker_sup(args.data, args.output) if args.worker == "sup" else worker_same_pairs(args.data, args.uf))
        Path(args.result).write_text(json.dumps(out))
        return
    t0 = time.perf_counter()
    results = run(args)
    results["wall_seconds"] = round(time.perf_counter() - t0, 1)
    default = args.rows == list(ROWS) and args.response_words == RESPONSE_WORDS and args.repeat == REPEAT
    target = ROOT / OUTPUT if default else ROOT / args.work_dir / "long_pool_speed.partial.json"
    from zebra.records import write_json_atomic

    write_json_atomic(target, results)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
