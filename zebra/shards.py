"""One binarize run spread over cores or machines: shards, and the merge that joins them.

A shard run (`--num-shards S --shard-index I`, zebra.pipeline) selects the pairs of the prompts
whose prompt_id mod S is I (zebra.data.shard_of) and writes them, each with its `input_row`, with a
meta file whose `shard` block holds what the counts do not: the model pairs behind the
reliability summary. `merge` joins the S outputs into the file one run writes, in one run's order
(input order), and their metas into one run's meta; `binarize_in_processes` (--num-proc N) runs N
shards in N processes on this machine and merges them.

JSON and JSON-lines outputs merge byte for byte: the shards' record lines are copied, ordered by
`input_row`, with that field cut off. Parquet merges as the same table (same rows, order, schema
and values); its row groups follow the merge's batches, not one run's, so its bytes may differ.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from zebra.errors import ZebraError
from zebra.jsonio import not_a_file

log = logging.getLogger(__name__)

ROW_FIELD = "input_row"  # a shard's records end with it (zebra.pipeline.build_records)
_ROW_KEY = b', "' + ROW_FIELD.encode() + b'": '
# per-shard settings, not what the pairs depend on: shards of one run may differ in them
PER_SHARD = ("output", "progress")


class ShardError(ZebraError):
    """Shard outputs that do not make one run; the message is one line naming the file."""


def read_shard_meta(path: str | Path) -> dict[str, Any]:
    from zebra.jsonio import read_json

    meta_path = Path(f"{path}.meta.json")
    if problem := not_a_file(path, "shard output"):
        raise ShardError(problem)
    meta = read_json(meta_path, "shard meta file", expect=dict)
    if not isinstance(meta.get("shard"), dict):
        raise ShardError(f"{meta_path}: not a shard's meta (no 'shard' block); write shards with "
                         "--num-shards S --shard-index I")
    return meta


def check_shards(paths: list[Path], metas: list[dict[str, Any]]) -> list[int]:
    """One line for the first reason these shard outputs are not one run's: a different shard
    count, a shard given twice or missing, or a different setting, input or behaviour table.
    Returns the order of `paths` by shard index."""
    first, count = paths[0], metas[0]["shard"]["count"]
    by_index: dict[int, Path] = {}
    for path, meta in zip(paths, metas):
        shard = meta["shard"]
        if shard["count"] != count:
            raise ShardError(f"{path}: shard {shard['index']} of {shard['count']}, but {first} is of {count}; "
                             "shards of one run share --num-shards")
        if shard["index"] in by_index:
            raise ShardError(f"{path} and {by_index[shard['index']]} are both shard {shard['index']} of {count}")
        by_index[shard["index"]] = path
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        raise ShardError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {count} "
                         f"missing (given: {', '.join(str(i) for i in sorted(by_index))})")
    for path, meta in zip(paths[1:], metas[1:]):
        for name in sorted(set(meta["settings"]) | set(metas[0]["settings"])):
            if name in PER_SHARD:
                continue
            mine, theirs = meta["settings"].get(name), metas[0]["settings"].get(name)
            if mine != theirs:
                raise ShardError(f"{path}: {name} {mine!r}, but {first}: {theirs!r}; shards of one run share every setting")
        for name, mine, theirs in (("data", meta.get("data"), metas[0].get("data")),
                                   ("data_files", meta.get("data_files"), metas[0].get("data_files")),
                                   ("behaviour table sha256", meta["behaviour_table"].get("sha256"),
                                    metas[0]["behaviour_table"].get("sha256")),
                                   ("pool", meta.get("pool"), metas[0].get("pool"))):
            if mine != theirs:
                raise ShardError(f"{path}: another {name} than {first} ({mine!r} vs {theirs!r}); "
                                 "shards of one run read the same data and table")
    return [paths.index(by_index[i]) for i in range(count)]


def merge_counts(counts: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' `counts` summed into the one run's (zebra.pipeline.Counts.as_dict): every count
    is a sum over prompts, and the kinship-rank mean is taken from the summed histogram."""
    from zebra.pipeline import Counts

    total = Counts()
    for c in counts:
        total.rows_read += c["rows_read"]
        total.rows_written += c["rows_written"]
        # update, not +: a reason counted 0 times stays in the meta, as in one run
        total.rows_skipped.update(c["rows_skipped"])
        total.responses.update(c["responses"])
        total.model_not_in_table.update(c["model_not_in_table"])
        total.model_missing_score.update(c["model_missing_score"])
        total.chosen.update(c["chosen_by_model"])
        total.rejected.update(c["rejected_by_model"])
        total.kinship_rank.update({int(k): v for k, v in c["kinship_rank_histogram"].items()})
    return total.as_dict()


def merge_reliability(settings: dict[str, Any], table_sha256: str | None,
                      shards: list[dict[str, Any]]) -> dict[str, Any]:
    """The one run's reliability summary, from the model pairs every shard counted (its `shard`
    block) and the behaviour table, which must still be the one the shards read."""
    from zebra.behaviour import read_benchmark
    from zebra.pipeline import file_sha256
    from zebra.reliability import PairReliability

    benchmark = settings["benchmark"]
    if file_sha256(benchmark) != table_sha256:
        raise ShardError(f"{benchmark}: not the behaviour table the shards read (sha256 {table_sha256}); "
                         "merge with the table they were run with")
    table = read_benchmark(benchmark)
    reliability = PairReliability.from_raw(table.raw, settings["reliability_temperature"]).resolved(
        settings.get("max_entropy"), None)
    for shard in shards:
        reliability.pair_counts.update({(c, r): n for c, r, n in shard["pair_counts"]})
        reliability.unrated += shard["pairs_without_votes"]
    return reliability.summary()


def _text_records(path: Path, fmt: str) -> Iterator[tuple[int, tuple[memoryview, bytes]]]:
    """(input_row, the record's JSON text without it, in two pieces) of each record of a shard's
    JSON(-lines) output, in file order. The writer puts one record on a line and `input_row` last.
    Read in blocks, each line sliced once: a merge's cost is the copying, not Python per record."""
    number = 0
    with open(path, "rb") as fh:
        rest = b""
        while True:
            block = fh.read(1 << 24)
            lines = (rest + block).split(b"\n") if block else [rest]
            rest = lines.pop() if block else b""  # a line cut by the block's end: with the next block
            for line in lines:
                number += 1
                if fmt == "json":
                    if line in (b"[", b"]"):
                        continue
                    if line.endswith(b","):
                        line = memoryview(line)[:-1]
                if not line:
                    continue
                tail = bytes(line[-64:])  # `, "input_row": N}` closes the record, N at most 20 digits
                found = tail.rfind(_ROW_KEY)
                if found < 0 or not tail.endswith(b"}"):
                    raise ShardError(f"{path}:{number}: a record without {ROW_FIELD!r} at its end; not a shard output")
                at = len(line) - len(tail) + found
                try:
                    row = int(tail[found + len(_ROW_KEY):-1])
                except ValueError:
                    raise ShardError(f"{path}:{number}: {ROW_FIELD!r} is not an integer; not a shard output") from None
                yield row, (memoryview(line)[:at], b"}")
            if not block:
                return


def merge(paths: list[str | Path], output: str | Path, settings: dict[str, Any] | None = None,
          started: float | None = None) -> dict[str, Any]:
    """Join shard outputs into `output` and its meta, as one run writes them; returns the meta.

    `settings`: meta settings that differ from the shards' (--num-proc: the run's `progress`).
    `started`: when the whole run began (perf_counter), for the meta's total seconds.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from zebra.data import read_parquet
    from zebra.pipeline import _versions
    from zebra.records import RecordWriter, check_output, output_format
    from zebra.settings import check_output_path

    t0 = time.perf_counter()
    paths = [Path(p) for p in paths]
    if not paths:
        raise ShardError("no shard outputs given")
    fmt = output_format(output)
    for path in paths:
        if output_format(path) != fmt:
            raise ShardError(f"{path}: a {output_format(path)} file; the shards and --output {output} share one format")
    metas = [read_shard_meta(p) for p in paths]
    order = check_shards(paths, metas)
    paths, metas = [paths[i] for i in order], [metas[i] for i in order]
    for path in (output, f"{output}.meta.json"):
        check_output_path(path, [*paths, *(Path(f"{p}.meta.json") for p in paths)])
    check_output(output)
    first = metas[0]
    merged_settings = {**first["settings"], "output": str(output), **(settings or {})}
    if (merged_settings["strategy"] == "baseline" and merged_settings.get("score") == "mean-rating"
            and not any(m["shard"]["ratings_seen"] for m in metas)):
        from zebra.data import DataError

        raise DataError(f"{first['data']}: completions' 'annotations' hold no aspect ratings; --score mean-rating needs them")
    reliability = merge_reliability(merged_settings, first["behaviour_table"].get("sha256"), [m["shard"] for m in metas])
    counts = merge_counts([m["counts"] for m in metas])

    if fmt == "parquet":
        tables = [read_parquet(p) for p in paths]
        table = pa.concat_tables(tables)
        table = table.take(pc.sort_indices(table.column(ROW_FIELD))).drop_columns([ROW_FIELD])
        extra = [(f.name, f.type) for f in table.schema if f.name not in _base_fields()]
        with RecordWriter(output, extra, deferred=True) as writer:
            for batch in table.to_batches(max_chunksize=4096):
                writer.write(pa.Table.from_batches([batch]))
    else:
        with RecordWriter(output, deferred=True) as writer:
            # each shard is in input order; a k-way merge keeps memory at one record per shard
            # (input rows are unique, so the tuples compare by row alone)
            writer.write_json_text(text for _, text in heapq.merge(*(_text_records(p, fmt) for p in paths)))
    if writer.count != counts["rows_written"]:
        writer.abort()
        raise ShardError(f"the shard outputs hold {writer.count} records but their metas count "
                         f"{counts['rows_written']}; was a shard output replaced?")
    _log_skipped_models(counts, merged_settings["benchmark"])
    t_merge = time.perf_counter() - t0
    seconds = [m["seconds"] for m in metas]
    meta = {
        "settings": merged_settings,
        "data": first["data"],
        "data_files": first["data_files"],
        "behaviour_table": first["behaviour_table"],
        "counts": counts,
        **({"pool": first["pool"]} if "pool" in first else {}),
        "reliability": reliability,
        "seconds": {"load": max(s["load"] for s in seconds),
                    "select_and_build": round(sum(s["select_and_build"] for s in seconds), 3),
                    "merge": round(t_merge, 3),
                    "total": round(time.perf_counter() - started if started is not None
                                   else max(s["total"] for s in seconds) + t_merge, 3)},
        "versions": _versions(),
        "merged_from": {"shards": len(paths), "files": [str(p) for p in paths]},
    }
    writer.commit(meta)  # output and meta together, or neither
    return meta


def _base_fields() -> set[str]:
    from zebra.records import SCHEMA

    return set(SCHEMA.names)


def _log_skipped_models(counts: dict[str, Any], benchmark: str) -> None:
    """The warnings one run logs (zebra.pipeline.binarize), once for the whole run."""
    for key, what in (("model_not_in_table", "model not in"), ("model_missing_score", "model has a missing score in")):
        if counts[key]:
            log.warning("responses skipped, %s %s: %s", what, benchmark,
                        ", ".join(f"{m} ({c})" for m, c in Counter(counts[key]).most_common()))


def _run_shard(cfg, rule, opened) -> None:
    """One shard in a worker process; its warnings are the merge's to give, once."""
    from zebra.pipeline import binarize

    logging.disable(logging.WARNING)
    binarize(cfg, rule, opened)


def binarize_in_processes(cfg, rule=None) -> dict[str, Any]:
    """--num-proc N: the run as N shards in N processes on this machine, merged into `cfg.output`
    (the same file and counts as one process writes). The shards are written to a hidden folder
    beside the output, removed afterwards."""
    import dataclasses
    import multiprocessing
    import pickle
    import shutil
    import tempfile
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    from zebra.data import CacheFiles, batch_source, open_data
    from zebra.pipeline import check_config
    from zebra.progress import show_progress
    from zebra.records import make_parent

    started = time.perf_counter()
    where = check_config(cfg)  # every refusal before a process starts
    if rule is not None:
        try:
            pickle.dumps(rule)
        except Exception:  # noqa: BLE001 (a lambda, a local function: any reason is the same one)
            raise ZebraError("--num-proc: the rule must be a function at a module's top level, which each "
                             "process can import (not a lambda or a nested function)") from None
    # Read once here: when the rows are `datasets` cache files, each process reads those files
    # (a few names) and skips loading, which costs more than its share of the selection at 1×.
    data = open_data(where, cfg.limit)
    source = batch_source(data.dataset)
    opened = (source, data.pool_report) if isinstance(source, CacheFiles) else None
    del data, source
    out = Path(cfg.output)
    make_parent(out)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.shards-", dir=out.parent))
    shard_cfgs = [dataclasses.replace(cfg, num_proc=1, num_shards=cfg.num_proc, shard_index=i, progress=False,
                                      output=str(work / f"shard-{i}{out.suffix}")) for i in range(cfg.num_proc)]
    try:
        # spawn: a forked child would inherit pyarrow's thread pools mid-state
        with ProcessPoolExecutor(cfg.num_proc, mp_context=multiprocessing.get_context("spawn")) as pool, tqdm(
                total=cfg.num_proc, unit="shard", desc=f"binarize {cfg.strategy} ({cfg.num_proc} processes)",
                disable=not show_progress(cfg.progress)) as bar:
            for done in as_completed([pool.submit(_run_shard, c, rule, opened) for c in shard_cfgs]):
                done.result()  # a shard's ZebraError is raised here, as its own one line
                bar.update(1)
        return merge([c.output for c in shard_cfgs], cfg.output, {"progress": cfg.progress}, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
