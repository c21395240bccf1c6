r"""Peak memory of `analyze.py frequency`, `tfidf` and `agreement` at 1× and 10× of a made-up pool (issue 23 §2).

    # 6,400 and 64,000 made-up UltraFeedback rows (64,000: UltraFeedback's size); --before DIR also
    # runs the analyze.py of another checkout (e.g. `git archive main | tar -x -C DIR`) on the same
    # data and outputs, in the same run; --output names the README's file (without it:
    # out/bench_analyze/analyze_memory.json)
    python -m benchmarks.analyze_memory --before /tmp/zebra_main --output benchmarks/results/analyze_memory.json

    # a tiny smoke run
    python -m benchmarks.analyze_memory --rows 200 --scales 1 2 --output out/bench_analyze/smoke.json

For each size (`--rows` × each of `--scales`) the made-up data (make_ultrafeedback.py, responses of
realistic length) is binarized once into the five outputs the analyses read (analyze.py's own
binarize step, not measured). Then each analysis runs alone, in a fresh process, on those
outputs (`--binarized`), and its peak RSS is read from the kernel (`wait4`). `--tokenizer none`:
the token rule would tokenise every response (minutes at 10×) and holds no more than a count per
response. `--n-boot` is small (the intervals' resampling is bounded apart, in chunks of at most
4M indices; the memory measured here is the records'). Ratios: 10× ÷ 1× per code, after ÷ before
per size; the driver imports nothing of the data stack, so its own peak (recorded) stays small.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import at_least_one
from benchmarks.binarize_speed import make_data

ROOT = Path(__file__).resolve().parent.parent
ROWS = 6_400  # 1×; 10× = 64,000, UltraFeedback's size, where the analyses held ~1.6 GB before issue 23
SCALES = (1, 10)
RESPONSE_WORDS = 220  # ~1,300 characters a response, like UltraFeedback's
ANALYSES = ("frequency", "tfidf", "agreement")  # kinship reads what frequency reads
N_BOOT = 20
WORK_DIR = "out/bench_analyze"  # generated data, caches, outputs: git-ignored
TRACKED = "benchmarks/results/analyze_memory.json"  # the README's numbers: written only when --output names it


def run(cmd: list[str], root: Path, env: dict, log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command in a fresh process; its output goes to `log`."""
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... failed in {root}; see {log}:\n{log.read_text()[-2000:]}")
    return round(wall, 2), round(usage.ru_maxrss / 1024, 1)


def git_commit(root: Path) -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def save(output: Path, result: dict) -> None:
    """Write `result` with this machine and the driver's own peak RSS beside it, and print its ratios.
    Call after every measured run: the children started from the driver's peak, not this import's."""
    import resource

    from zebra.records import json_text, write_text_atomic

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
               "python": platform.python_version(), "load_average": os.getloadavg()}
    head = {k: result[k] for k in ("settings", "code")}  # the keys in the order the recorded results have them
    result = {**head, "machine": machine, **{k: v for k, v in result.items() if k not in head},
              "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, json_text(result))
    print(json.dumps(result["ratios"], indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=at_least_one, default=ROWS, help="rows at 1× (default: %(default)s)")
    ap.add_argument("--scales", type=at_least_one, nargs="+", default=list(SCALES), help="multiples of --rows (default: 1 10)")
    ap.add_argument("--response-words", type=at_least_one, default=RESPONSE_WORDS, help="words a made-up response (default: %(default)s)")
    ap.add_argument("--n-boot", type=at_least_one, default=N_BOOT, help="bootstrap resamples (default: %(default)s)")
    ap.add_argument("--before", default=None, help="another checkout whose analyze.py runs too (the code before a change)")
    ap.add_argument("--before-label", default=None, help="what --before is, recorded in the result (e.g. main@125608a)")
    ap.add_argument("--work-dir", default=WORK_DIR, help="data, caches and outputs (default: %(default)s)")
    ap.add_argument("--output", default=None, help=f"result JSON (default: WORK_DIR/analyze_memory.json; the README's is {TRACKED})")
    args = ap.parse_args()

    data_dir = (ROOT / args.work_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_DATASETS_CACHE": str(data_dir / "hf_cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    codes = {"after": ROOT}
    if args.before:
        codes["before"] = Path(args.before).resolve()
    runs = []
    for scale in args.scales:
        rows = args.rows * scale
        data = data_dir / f"uf_{rows}_{args.response_words}.jsonl"
        make_data(data, rows, args.response_words)
        prepared = data_dir / f"bin_{rows}_{args.response_words}"
        if not (prepared / "binarized" / "sim_least.json").exists():
            print(f"binarizing {data}", flush=True)
            run([sys.executable, "analyze.py", "kinship", "--data", str(data), "--output-dir", str(prepared),
                 "--jobs", "1", "--tokenizer", "none"], ROOT, env, data_dir / "binarize.log")
        for code, root in codes.items():
            for analysis in ANALYSES:
                out = data_dir / f"out_{code}_{analysis}_{rows}"
                cmd = [sys.executable, "analyze.py", analysis, "--data", str(data), "--binarized", str(prepared / "binarized"),
                       "--output-dir", str(out), "--n-boot", str(args.n_boot), "--tokenizer", "none"]
                seconds, rss = run(cmd, root, env, data_dir / f"{code}_{analysis}_{rows}.log")
                runs.append({"code": code, "analysis": analysis, "scale": scale, "rows": rows, "seconds": seconds,
                             "peak_rss_mb": rss})
                print(f"{code:6} {analysis:10} {rows:>7} rows  {seconds:7.1f} s  {rss:8.1f} MB", flush=True)
    peak = {(r["code"], r["analysis"], r["scale"]): r["peak_rss_mb"] for r in runs}
    lo, hi = min(args.scales), max(args.scales)
    ratios = {}
    for code in codes:
        for analysis in ANALYSES:
            ratios[f"{code} {analysis}: {hi}x / {lo}x"] = round(peak[code, analysis, hi] / peak[code, analysis, lo], 3)
    if "before" in codes:
        for analysis in ANALYSES:
            for scale in args.scales:
                ratios[f"{analysis} at {scale}x: after / before"] = round(peak["after", analysis, scale] / peak["before", analysis, scale], 3)
    save(ROOT / (args.output or Path(args.work_dir) / "analyze_memory.json"), {"settings": {**vars(args), "analyses": list(ANALYSES), "tokenizer": "none"},
                              "code": {"after": git_commit(ROOT),
                                       "before": args.before_label or (git_commit(codes["before"]) if args.before else None)},
                              "runs": runs, "ratios": ratios})


if __name__ == "__main__":
    main()
