r"""Peak memory of `select_potential.py` at 1× and 10× of a made-up pool (issue 23 §2).

    # 6,400 and 64,000 made-up UltraFeedback rows; without --output it writes
    # out/bench_potential/potential_memory.json
    python -m benchmarks.potential_memory --output benchmarks/results/potential_memory.json

    # a tiny smoke run
    python -m benchmarks.potential_memory --rows 100 --scales 1 2 --output out/bench_potential/smoke.json

For each size (`--rows` × each of `--scales`) the made-up data (make_ultrafeedback.py, responses of
realistic length) is binarized once with binarize_score.py (SUP, not measured). Then
select_potential.py scores it, in a fresh process whose peak RSS is read from the kernel (`wait4`):
with its default `--chunk` (4,096 records held at once; each pass reads the file again), and at the
largest size once more with `--chunk` as large as the file (every record at once, what the script
did before issue 23), so the bound is seen to be the chunk's. The policy is a random Llama-style
model of a few 10k parameters (tests/tiny.py) on CPU with `--max-length 64`: the model's own memory
is not what grows with the data; the records, their token sequences and the log-probs are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks import at_least_one
from benchmarks.analyze_memory import git_commit, run, save
from benchmarks.binarize_speed import make_data

ROOT = Path(__file__).resolve().parent.parent
ROWS = 6_400  # 1×; 10× = 64,000, UltraFeedback's size
SCALES = (1, 10)
RESPONSE_WORDS = 220  # ~1,300 characters a response, like UltraFeedback's
CHUNK = 4096  # select_potential.py's default
MAX_LENGTH = 64  # tokens a sequence: the tiny model's cost stays small; the records' memory does not shrink
WORK_DIR = "out/bench_potential"  # generated data, model, outputs: git-ignored
TRACKED = "benchmarks/results/potential_memory.json"  # the README's numbers: written only when --output names it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=at_least_one, default=ROWS, help="rows at 1× (default: %(default)s)")
    ap.add_argument("--scales", type=at_least_one, nargs="+", default=list(SCALES), help="multiples of --rows (default: 1 10)")
    ap.add_argument("--response-words", type=at_least_one, default=RESPONSE_WORDS, help="words a made-up response (default: %(default)s)")
    ap.add_argument("--work-dir", default=WORK_DIR, help="data, model and outputs (default: %(default)s)")
    ap.add_argument("--output", default=None, help=f"result JSON (default: WORK_DIR/potential_memory.json; the README's is {TRACKED})")
    args = ap.parse_args()

    work = (ROOT / args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_DATASETS_CACHE": str(work / "hf_cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    model = work / "tiny_policy"
    if not (model / "config.json").exists():  # made in a child: the driver imports nothing of torch
        run([sys.executable, "-c", f"from tests.tiny import make_tiny_model_dir; make_tiny_model_dir({str(model)!r})"],
            ROOT, env, work / "model.log")
    runs = []
    scales = sorted(set(args.scales))
    for scale in scales:
        rows = args.rows * scale
        data = work / f"uf_{rows}_{args.response_words}.jsonl"
        make_data(data, rows, args.response_words)
        sup = work / f"sup_{rows}_{args.response_words}.jsonl"
        if not sup.exists():
            print(f"binarizing {data}", flush=True)
            run([sys.executable, "binarize_score.py", "--data", str(data), "--output", str(sup)], ROOT, env,
                work / "binarize.log")
        records = sum(1 for _ in open(sup, "rb"))
        chunks = [CHUNK] + ([records] if scale == scales[-1] and records > CHUNK else [])
        for chunk in chunks:
            out = work / f"potential_{rows}_{chunk}.parquet"
            cmd = [sys.executable, "select_potential.py", "--data", str(sup), "--model", str(model), "--output", str(out),
                   "--device", "cpu", "--dtype", "float32", "--max-length", str(MAX_LENGTH), "--batch-size", "64",
                   "--chunk", str(chunk)]
            seconds, rss = run(cmd, ROOT, env, work / f"potential_{rows}_{chunk}.log")
            meta = json.loads(Path(f"{out}.meta.json").read_text(encoding="utf-8"))
            runs.append({"scale": scale, "rows": rows, "records": records, "chunk": chunk, "seconds": seconds,
                         "peak_rss_mb": rss, "kept": meta["counts"]["kept"]})
            print(f"{rows:>7} rows  {records:>7} records  chunk {chunk:>6}  {seconds:7.1f} s  {rss:8.1f} MB", flush=True)
    lo, hi = scales[0], scales[-1]
    peak = {(r["scale"], r["chunk"]): r["peak_rss_mb"] for r in runs}
    ratios = {f"chunk {CHUNK}: {hi}x / {lo}x": round(peak[hi, CHUNK] / peak[lo, CHUNK], 3)}
    whole = [r for r in runs if r["scale"] == hi and r["chunk"] != CHUNK]
    if whole:
        ratios[f"{hi}x: whole file at once / chunk {CHUNK}"] = round(whole[0]["peak_rss_mb"] / peak[hi, CHUNK], 3)
    save(ROOT / (args.output or Path(args.work_dir) / "potential_memory.json"), {"settings": {**vars(args), "chunk": CHUNK, "max_length": MAX_LENGTH,
                                           "policy": "tests/tiny.py random Llama"},
                              "code": git_commit(ROOT), "runs": runs, "ratios": ratios})

if __name__ == "__main__":
    main()
