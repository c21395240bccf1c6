"""Cost of the checks before `datasets` reads a JSON(-lines) file, against `datasets`' own load of it.

    # the measurement in the README: UltraFeedback-size made-up JSON lines (455 MB)
    python make_ultrafeedback.py --rows 63967 --response-words 220 --output out/uf_full.jsonl
    python -m benchmarks.json_check_cost --data out/uf_full.jsonl

    # a quick look (tests/test_jsonio.py runs this on a small file)
    python -m benchmarks.json_check_cost --data data/ultrafeedback_sample.jsonl --repeats 1

Each repeat times, in this order and in one process, so that load from other processes hits all
alike: `zebra.jsonio.check_json_data` (the scan zebra.data runs on a file's first load), a cold
`datasets.load_dataset("json", ...)` into a fresh cache folder, `zebra.data.check_numbers` on the
loaded dataset (the NaN/Infinity look at the float columns, which runs on every load), and a warm
load from that cache. Reported: medians over repeats and the ratios scan / cold load and
check_numbers / warm load. The file is read once before timing, so every pass reads it from the
page cache. Prints one JSON object; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import at_least_one

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/json_check_cost.py` as well as `-m`
    sys.path.insert(0, str(ROOT))

REPEATS = 3


def measure(path: Path, repeats: int) -> dict:
    import datasets

    from zebra.data import check_numbers
    from zebra.jsonio import check_json_data

    datasets.disable_progress_bars()
    path.read_bytes()  # into the page cache: every timed pass then reads it alike
    times: dict[str, list[float]] = {"scan": [], "cold_load": [], "check_numbers": [], "warm_load": []}
    for _ in range(repeats):
        t = time.perf_counter()
        check_json_data(path)
        times["scan"].append(time.perf_counter() - t)
        cache = tempfile.mkdtemp(prefix="json_check_cost-")
        try:
            t = time.perf_counter()
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache)
            times["cold_load"].append(time.perf_counter() - t)
            t = time.perf_counter()
            check_numbers(ds, [path])
            times["check_numbers"].append(time.perf_counter() - t)
            del ds
            t = time.perf_counter()
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache)
            times["warm_load"].append(time.perf_counter() - t)
            del ds
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {"data": str(path), "megabytes": round(path.stat().st_size / 1e6, 1), "repeats": repeats,
            "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "median_seconds": {k: round(v, 3) for k, v in median.items()},
            "scan_over_cold_load": round(median["scan"] / median["cold_load"], 3),
            "check_numbers_over_warm_load": round(median["check_numbers"] / median["warm_load"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a JSON-lines (or JSON list) file in the UltraFeedback schema")
    ap.add_argument("--repeats", type=at_least_one, default=REPEATS, help="(default: %(default)s)")
    args = ap.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"error: --data {args.data}: no such file")
    print(json.dumps(measure(Path(args.data), args.repeats)))


if __name__ == "__main__":
    main()
