"""One binarization run: source → batches → the strategy's rule → records and a meta file, as a pair.

The engineering behind the four `binarize_*.py` scripts: each states its strategy's rule (a
zebra.strategies call with the run's settings) and passes it here. The source is located once
(zebra.data.locate), read one Arrow batch at a time, so memory is bounded by the batch size,
and every selection inside a batch is vectorised over the models that batch uses.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import re
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zebra import strategies
from zebra.behaviour import BehaviourTable, read_benchmark
from zebra.data import (DEFAULT_DATA, Batch, DataError, DataSource, ResponseCounts, batch_source, iter_batches,
                        locate, open_data, shard_rows, to_batch, usable_slots)
from zebra.errors import ZebraError
from zebra.pools import PoolOptions
from zebra.progress import show_progress
from zebra.records import RecordWriter, check_output
from zebra.reliability import TEMPERATURE, PairReliability
from zebra.reliability import check_settings as check_reliability_settings
from zebra.settings import check_number, check_output_path

log = logging.getLogger(__name__)


@dataclass
class BinarizeConfig:
    """Everything a run depends on; written verbatim into `<output>.meta.json`."""

    strategy: str  # sup | sim | sim_least | sup_sim | baseline
    output: str
    data: str | None = None  # None: the shipped real pool (zebra.data.DEFAULT_DATA)
    benchmark: str = "model_aware/benchmark.csv"
    tau: float = 0.1
    rank_weight: float = 0.5
    similarity_weight: float = 0.5
    seed: int = 42
    limit: int | None = None
    batch_size: int = 4096  # rows per batch: peak RSS ~325 MB at 63,967 rows (~630 MB at 16,384), same speed
    score: str = "overall"  # baseline: overall | mean-rating
    drop_sources: tuple[str, ...] = ()  # baseline drops truthful_qa, as ultrafeedback_binarized does
    only_rated: bool = False  # baseline: keep only responses of models in the behaviour table
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # Benchmark-agreement reliability (zebra.reliability, seed 003): every record gets
    # `agreement`, `entropy`, `weight`; these drop pairs whose entropy is above a cut.
    max_entropy: float | None = None  # keep pairs with entropy <= this (nats, 0 … ln 2)
    entropy_quantile: float | None = None  # or: the cut is this quantile of the run's pairs (seed 003: 0.5)
    reliability_temperature: float = TEMPERATURE
    # The minimum MB-SUP gap (issue 20 §3): drop a selected pair whose MB-SUP(chosen) − MB-SUP(rejected)
    # is below this; the agreement study finds GPT-4 agrees with gaps <= 0.1 less often than a coin.
    # None: no filter, the paper's behaviour.
    min_mb_sup_gap: float | None = None
    # How to read a long-format pool (zebra.pools): --format, field names, --model-names, --judgments,
    # --models-per-prompt. None: defaults (and the folder's pool.json); UltraFeedback rows ignore it.
    pool: PoolOptions | None = None
    # One run over several cores or machines (zebra.shards): this run selects the pairs of shard
    # `shard_index` of `num_shards` only (data.shard_of: prompt_id mod num_shards), and its records
    # carry `input_row` for the merge; num_proc > 1 runs every shard in a process and merges them.
    num_proc: int = 1
    num_shards: int = 1
    shard_index: int = 0


# Which settings a strategy reads (the others are ignored, so the meta file and default names
# leave them out); every setting not named here applies to every strategy.
_SIM_BASED = ("sup", "sim", "sim_least", "sup_sim")
APPLIES_TO = {"tau": _SIM_BASED, "min_mb_sup_gap": _SIM_BASED, "rank_weight": ("sup_sim",), "similarity_weight": ("sup_sim",),
              "seed": ("baseline",), "score": ("baseline",), "drop_sources": ("baseline",), "only_rated": ("baseline",),
              # how a run is spread, not what it selects: never in the meta's settings (a shard's meta says it apart)
              "num_proc": (), "num_shards": (), "shard_index": ()}
# The settings besides the data that change which pairs (or weights) a run writes, in the order a default output
# name lists them, each with the value that leaves it out of the name (the paper's, or the scripts').
NAMED_SETTINGS = {"tau": 0.1, "rank_weight": 0.5, "similarity_weight": 0.5, "score": "overall",
                  "seed": 42, "drop_sources": ("truthful_qa",), "only_rated": False, "max_entropy": None,
                  "entropy_quantile": None, "reliability_temperature": TEMPERATURE, "min_mb_sup_gap": None, "limit": None}


def applies(setting: str, strategy: str) -> bool:
    return strategy in APPLIES_TO.get(setting, (strategy,))


def default_output(base: str, cfg: BinarizeConfig) -> str:
    """`base` with the run's pair-changing settings that differ from the defaults inserted before
    the extension, so that two runs with different pairs never share a default file:
    UltraFeedback.baseline.json → UltraFeedback.baseline.score-mean-rating.limit-40.json."""
    # the data's own name (none for the scripts' default, the shipped pool), then how it was read
    parts = [] if cfg.data is None or _is_shipped_pool(cfg.data) else [_name_part("data", _stem(cfg.data))]
    parts += _pool_parts(cfg)
    for name, default in NAMED_SETTINGS.items():
        value = getattr(cfg, name)
        if applies(name, cfg.strategy) and value != default:
            parts.append(_name_part(name, value))
    if cfg.num_shards > 1:  # one file per shard: merge.py joins them into the run's file
        parts.append(f"shard-{cfg.shard_index}-of-{cfg.num_shards}")
    path = Path(base)
    if not parts:
        return base
    return str(path.with_name(f"{path.stem}.{'.'.join(parts)}{path.suffix}"))


def _is_shipped_pool(data: str | None) -> bool:
    return data is not None and Path(str(data)).resolve() == DEFAULT_DATA


def _stem(value: str) -> str:
    """A dataset's or file's own name: a hub id's last part, a file's stem."""
    value = Path(str(value).rstrip("/")).name
    return value.rsplit(".", 1)[0] if "." in value else value


def _name_part(name: str, value: Any) -> str:
    if value is True:
        return name
    if isinstance(value, tuple):
        value = "+".join(value) or "none"
    elif isinstance(value, float):
        value = format(value, "g")
    return f"{name}-{re.sub(r'[^A-Za-z0-9_.+-]+', '-', str(value)).strip('-')}"


def _pool_parts(cfg: BinarizeConfig) -> list[str]:
    """A long-format pool's options that change the pairs: another prompts file or name map, other
    labels, keeping only judged responses, and the K-of-a-prompt draw with its seed (the seed matters
    only then)."""
    pool = cfg.pool
    if pool is None:
        return []
    parts = [_name_part(name, _stem(getattr(pool, name)))
             for name in ("prompts", "model_names", "judgments", "score_field") if getattr(pool, name) is not None]
    if pool.judged_only:
        parts.append("judged_only")
    if pool.models_per_prompt is not None:
        parts.append(f"k-{pool.models_per_prompt}")
        if pool.seed != NAMED_SETTINGS["seed"] and not applies("seed", cfg.strategy):
            parts.append(_name_part("seed", pool.seed))
    return parts




@dataclass
class Counts(ResponseCounts):
    """A run's accounting: rows by outcome, responses by reason (zebra.data.usable_slots), pairs."""

    rows_read: int = 0
    rows_written: int = 0
    rows_skipped: Counter = field(default_factory=Counter)
    ratings_seen: bool = False  # --score mean-rating: did any completion carry an aspect rating? (not in the meta)
    chosen: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    kinship_rank: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        ranks = sum((r * c for r, c in self.kinship_rank.items()), 0)
        n_ranks = sum(self.kinship_rank.values())
        return {
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_skipped": dict(self.rows_skipped),
            "responses": dict(self.responses),
            "model_not_in_table": dict(self.model_not_in_table.most_common()),
            "model_missing_score": dict(self.model_missing_score.most_common()),
            "chosen_by_model": dict(self.chosen.most_common()),
            "rejected_by_model": dict(self.rejected.most_common()),
            "kinship_rank_histogram": {str(k): v for k, v in sorted(self.kinship_rank.items())},
            "kinship_rank_mean": (ranks / n_ranks) if n_ranks else None,
        }


def _messages_array(prompts: pa.Array, responses: pa.Array) -> pa.Array:
    """The original's two-message lists, [{"content": prompt, "role": "user"}, {"content": response,
    "role": "assistant"}], for every row at once: list<struct<content, role>>."""
    n = len(prompts)
    prompts, responses = prompts.cast(pa.string()), responses.cast(pa.string())
    if prompts.null_count or responses.null_count:  # never in records (a pair needs both texts): the plain way
        content = pa.concat_arrays([prompts, responses]).take(pa.array(np.stack([np.arange(n), np.arange(n) + n], axis=1).ravel()))
    else:
        # p0 r0 p1 r1 …: each row's prompt and response joined (one copy of the texts), then read as
        # two values each by offsets that split every row where its prompt ends
        joined = pc.binary_join_element_wise(prompts, responses, "")
        ends = np.frombuffer(joined.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * joined.offset)
        split = ends[:-1] + pc.binary_length(prompts).to_numpy(zero_copy_only=False)
        offsets = np.append(np.stack([ends[:-1], split], axis=1).ravel(), ends[-1]).astype(np.int32)
        content = pa.StringArray.from_buffers(2 * n, pa.py_buffer(offsets), joined.buffers()[2])
    role = pa.StringArray.from_buffers(2 * n, pa.py_buffer(np.append(0, np.cumsum(np.tile(np.int32([4, 9]), n))).astype(np.int32)),
                                       pa.py_buffer(b"userassistant" * n))
    items = pa.StructArray.from_arrays([content, role], names=["content", "role"])
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), items)


def build_records(batch: Batch, rows: np.ndarray, c_slot: np.ndarray, r_slot: np.ndarray,
                  columns: dict[str, np.ndarray]) -> pa.Table:
    """Records in the original ZEBRA format plus provenance columns, for the given rows, as one
    Arrow table (RecordWriter writes it as JSON, JSON lines or Parquet).

    `columns` maps extra field names to per-row arrays aligned with `rows` (NaN / −1 → null).
    The texts never become Python strings: at full size a dict per record, and json.dumps of
    each, took most of a run; a batch now costs a few Arrow kernels.
    """
    prompts = (batch.prompts.take(pa.array(rows, pa.int64())) if batch.prompts is not None
               else pa.array([batch.instruction[i] for i in rows.tolist()], pa.string()))
    ids = batch.prompt_ids
    chosen = batch.responses.take(pa.array(batch.pos[rows, c_slot]))
    rejected = batch.responses.take(pa.array(batch.pos[rows, r_slot]))
    names = np.stack([batch.model[rows, c_slot], batch.model[rows, r_slot]], axis=1).ravel()
    out = {
        "prompt": prompts,
        "prompt_id": pa.array([ids[i] for i in rows.tolist()], pa.string()),
        "most_similar_pair": pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * len(rows) + 1, 2, dtype=np.int32)),
                                                      pa.array(names.tolist(), pa.string())),
        "chosen": _messages_array(prompts, chosen),
        "rejected": _messages_array(prompts, rejected),
    }
    for name, values in columns.items():  # NaN and negative ints → null
        values = np.asarray(values)
        if values.dtype.kind == "f":
            out[name] = pa.array(values.astype(np.float64), mask=np.isnan(values))
        elif values.dtype.kind in "iu":
            out[name] = pa.array(values.astype(np.int64), mask=values < 0)
        else:
            cleaned = [None if (isinstance(v, float) and v != v) or (isinstance(v, int) and v < 0) else v
                       for v in values.tolist()]
            out[name] = pa.array(cleaned)
    if batch.row_ids is not None:  # a shard's records: their input positions, last (zebra.shards merges by them)
        out["input_row"] = pa.array(batch.row_ids[rows], pa.int64())
    return pa.table(out)


def _pair_columns(table: BehaviourTable, c_model: np.ndarray, r_model: np.ndarray) -> dict[str, np.ndarray]:
    """MB-SUP of both sides and their MB-SIM; NaN where a side is not in the table."""
    ok = (c_model >= 0) & (r_model >= 0)
    c0, r0 = np.where(c_model >= 0, c_model, 0), np.where(r_model >= 0, r_model, 0)
    sup = table.mb_sup
    return {
        "mb_sup_chosen": np.where(c_model >= 0, sup[c0], np.nan),
        "mb_sup_rejected": np.where(r_model >= 0, sup[r0], np.nan),
        "mb_sim": np.where(ok, table.mb_sim_pairs(c0, r0), np.nan),
    }


# A strategy's rule: one batch's candidates (strategies.Candidates, or strategies.Scored for the
# baseline) and the run's settings → one selection per prompt. Each binarize_*.py script states its own.
Rule = Callable[[Any, "BinarizeConfig"], Any]


def default_rule(strategy: str) -> Rule:
    """The rule each binarize_*.py script states, for callers that name a strategy instead
    (analyze.py's study, build_table.py study)."""
    if strategy == "baseline":
        return lambda c, cfg: strategies.select_baseline(c.scores, c.usable, c.keys)
    return lambda c, cfg: strategies.select(c.models, c.mb_sup, c.mb_sim, strategy, tau=cfg.tau,
                                            rank_weight=cfg.rank_weight, similarity_weight=cfg.similarity_weight)


def process_batch(batch: Batch, table: BehaviourTable, cfg: BinarizeConfig, counts: Counts,
                  reliability: PairReliability | None = None, pairs_only: bool = False,
                  rule: Rule | None = None) -> pa.Table | None:
    """Select one pair per usable prompt of a batch with `rule` (default: `default_rule`) and
    return its records.

    `reliability` (zebra.reliability) adds `agreement`, `entropy`, `weight` and applies its
    entropy cut, if any; without it: the default temperature and no cut. `pairs_only`: count
    the selected pairs into `reliability` and build no records (binarize's first pass): None.
    """
    n = batch.n
    keep_rows = np.ones(n, dtype=bool)
    if cfg.drop_sources:
        dropped = np.isin(batch.source.astype(str), list(cfg.drop_sources))
        counts.rows_skipped["dropped_source"] += int(dropped.sum())
        keep_rows &= ~dropped
    # A pair needs a prompt: empty, whitespace-only, null or non-text instructions are skipped.
    no_prompt = np.fromiter((not p or p.isspace() for p in batch.instruction), dtype=bool, count=n) & keep_rows
    counts.rows_skipped["empty_prompt"] += int(no_prompt.sum())
    keep_rows &= ~no_prompt

    rule = rule or default_rule(cfg.strategy)
    if cfg.strategy == "baseline":
        if cfg.score == "overall":
            scores = batch.scores("overall_score")
        else:  # Argilla's cleaned variant: mean of the four aspect ratings, N/A ignored
            with warnings.catch_warnings():  # all-N/A responses: NaN, counted as no_score below
                warnings.simplefilter("ignore", RuntimeWarning)
                scores = np.nanmean(batch.ratings(), axis=-1)
            counts.ratings_seen = counts.ratings_seen or batch.has_ratings()
        keys = batch.draw_keys(cfg.seed)
        # of one text given by several models the baseline keeps the best-scored copy (then the draw's)
        usable, midx = usable_slots(batch, table, counts, require_rated=cfg.only_rated, prefer=[scores, keys])
        usable &= keep_rows[:, None]
        counts.responses["no_score"] += int((usable & np.isnan(scores)).sum())
        sel = rule(strategies.Scored(scores, usable, keys), cfg)
        ok = sel.ok & keep_rows
        counts.rows_skipped["fewer_than_two_usable"] += int((sel.too_few & keep_rows).sum())
        counts.rows_skipped["all_scores_equal"] += int((sel.all_equal & keep_rows).sum())
        rows = np.flatnonzero(ok)
        c_slot, r_slot = sel.chosen[rows], sel.rejected[rows]
        c_model, r_model = midx[rows, c_slot], midx[rows, r_slot]
        columns = {"kinship_rank": np.full(rows.size, -1), **_pair_columns(table, c_model, r_model),
                   "score_chosen": scores[rows, c_slot], "score_rejected": scores[rows, r_slot]}
    else:
        usable, midx = usable_slots(batch, table, counts, require_rated=True)
        usable &= keep_rows[:, None]
        # the rule sees the models this batch uses, in table order (so its tie rules hold): a table of
        # any size costs what these few models cost, never M×M
        used, local = np.unique(np.where(usable, midx, -1), return_inverse=True)
        local = local.reshape(midx.shape) - int(used[0] == -1)
        used = used[used >= 0]
        shown = used if used.size else np.zeros(1, dtype=np.int64)  # no candidate at all: any model, never read
        cand = strategies.Candidates(local, table.mb_sup[shown], table.mb_sim_of(shown))
        sel = rule(cand, cfg)
        ranks = strategies.kinship_rank(cand.models, sel, cand.mb_sim)
        counts.rows_skipped["fewer_than_two_usable"] += int((sel.too_few & keep_rows).sum())
        counts.rows_skipped["no_pair_with_mb_sim_at_least_tau"] += int((sel.below_tau & keep_rows).sum())
        rows = np.flatnonzero(sel.ok)
        if cfg.min_mb_sup_gap is not None:  # before the reliability pass sees them: the run's pairs are the kept ones
            gap_ok = strategies.keep_min_mb_sup_gap(cand.mb_sup[sel.chosen_model[rows]], cand.mb_sup[sel.rejected_model[rows]],
                                                    cfg.min_mb_sup_gap)
            counts.rows_skipped["mb_sup_gap_below_min"] += int((~gap_ok).sum())
            rows = rows[gap_ok]
        c_slot, r_slot = sel.chosen[rows], sel.rejected[rows]
        c_model, r_model = used[sel.chosen_model[rows]], used[sel.rejected_model[rows]]
        columns = {"kinship_rank": ranks[rows], **_pair_columns(table, c_model, r_model)}

    # Reliability from benchmark agreement (zebra.reliability): the entropy cut, then the weights.
    if reliability is None:
        reliability = PairReliability.from_raw(table.raw, cfg.reliability_temperature)
    reliability.observe(c_model, r_model)
    if pairs_only:
        return None
    keep = reliability.keep(c_model, r_model)
    if not keep.all():
        rated = (c_model >= 0) & (r_model >= 0)
        counts.rows_skipped["entropy_above_max"] += int((rated & ~keep).sum())
        if not rated.all():  # baseline pairs with a model outside the table have no votes
            counts.rows_skipped["no_benchmark_votes"] += int((~rated).sum())
        rows, c_slot, r_slot, c_model, r_model = (a[keep] for a in (rows, c_slot, r_slot, c_model, r_model))
        columns = {k: v[keep] for k, v in columns.items()}
    columns.update(reliability.columns(c_model, r_model))
    if cfg.strategy != "baseline":
        counts.kinship_rank.update(columns["kinship_rank"].tolist())

    counts.chosen.update(batch.model[rows, c_slot].tolist())
    counts.rejected.update(batch.model[rows, r_slot].tolist())
    return build_records(batch, rows, c_slot, r_slot, columns)


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes (None if it cannot be read: read_benchmark then says why)."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _versions() -> dict[str, str]:
    # from the installed metadata: a shard process that reads the parent's Arrow files never imports datasets
    from importlib.metadata import version

    return {"python": platform.python_version(), "numpy": np.__version__, "pandas": version("pandas"),
            "pyarrow": pa.__version__, "datasets": version("datasets")}


def check_config(cfg: BinarizeConfig) -> DataSource:
    """Every setting in range, the data located and the output writable, before any work
    (zebra.settings). Returns where the data is (zebra.data.locate), decided once."""
    if cfg.strategy not in (*strategies.STRATEGIES, "baseline"):
        raise ZebraError(f"unknown strategy {cfg.strategy!r}")
    if cfg.score not in ("overall", "mean-rating"):
        raise ZebraError(f"--score must be 'overall' or 'mean-rating', not {cfg.score!r}")
    # MB-SIM is a cosine: a tau outside [-1, 1] admits every pair or none (an empty file, exit 0)
    check_number("--tau", cfg.tau, low=-1, high=1, hint="MB-SIM is a cosine similarity")
    # Negative weights would reward the worse or the less similar pair: not the method, refused.
    check_number("--rank-weight", cfg.rank_weight, low=0)
    check_number("--similarity-weight", cfg.similarity_weight, low=0)
    if cfg.strategy == "sup_sim" and cfg.rank_weight == 0 and cfg.similarity_weight == 0:
        raise ZebraError("--rank-weight and --similarity-weight are both 0: every pair would tie; make one positive")
    check_number("--seed", cfg.seed, low=0, high=2**63 - 1, integer=True)
    check_number("--limit", cfg.limit, low=1, integer=True, optional=True)
    check_number("--batch-size", cfg.batch_size, low=1, integer=True)
    check_number("--max-entropy", cfg.max_entropy, low=0, optional=True, hint="entropies lie in 0 … ln 2 = 0.693")
    check_number("--entropy-quantile", cfg.entropy_quantile, low=0, high=1, low_open=True, optional=True)
    check_number("--reliability-temperature", cfg.reliability_temperature, low=0, low_open=True)
    if applies("min_mb_sup_gap", cfg.strategy):  # MB-SUP lies in [0, 1]: a gap above 1 would drop every pair
        check_number("--min-mb-sup-gap", cfg.min_mb_sup_gap, low=0, high=1, optional=True, hint="MB-SUP lies in [0, 1]")
    elif cfg.min_mb_sup_gap is not None:
        raise ZebraError(f"--min-mb-sup-gap: the {cfg.strategy} strategy orders a pair by instance score, "
                         "not MB-SUP, so its pairs have no MB-SUP gap to filter")
    check_reliability_settings(cfg.max_entropy, cfg.entropy_quantile, cfg.reliability_temperature)
    check_sharding(cfg)
    # every file the run reads, however it is named: the source as given (a folder: nothing may be
    # written into it) and the table first, then each file the source consists of (pool.json and
    # the files it names), which locating it lists (and which may fail on a bad source)
    for path in (cfg.output, f"{cfg.output}.meta.json"):
        check_output_path(path, [cfg.data if cfg.data is not None else DEFAULT_DATA, cfg.benchmark])
    where = locate(cfg.data, cfg.pool)
    for path in (cfg.output, f"{cfg.output}.meta.json"):
        check_output_path(path, where.files)
    check_output(cfg.output)  # format, folder, stale temporary files: before any work
    return where


def check_sharding(cfg: BinarizeConfig) -> None:
    """--num-proc, --num-shards, --shard-index in range, and refused with the settings that need the
    whole run at once. --limit needs nothing: it takes the input's first N prompts before sharding."""
    check_number("--num-proc", cfg.num_proc, low=1, integer=True)
    check_number("--num-shards", cfg.num_shards, low=1, integer=True)
    check_number("--shard-index", cfg.shard_index, low=0, high=cfg.num_shards - 1, integer=True,
                 hint=f"shards are numbered 0 … {cfg.num_shards - 1} (--num-shards {cfg.num_shards})")
    if cfg.num_proc > 1 and cfg.num_shards > 1:
        raise ZebraError("--num-proc with --num-shards: give one; --num-proc N runs N shards on this machine and "
                         "merges them, --num-shards S --shard-index I runs one shard of S (merge.py joins them)")
    if (cfg.num_proc > 1 or cfg.num_shards > 1) and cfg.entropy_quantile is not None:
        raise ZebraError("--entropy-quantile takes its cut over the whole run's pairs, which no shard sees; run it "
                         "unsharded, or shard with --max-entropy set to the cut such a run reports (meta: reliability)")


def binarize(cfg: BinarizeConfig, rule: Rule | None = None, opened: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Run one constructor end to end; returns the meta dict also written beside the output.

    `rule` picks the pairs of each batch (a binarize_*.py script passes its own); None: the
    strategy's `default_rule`. Everything else (loading, batching, counting, writing) is here.
    `cfg.num_proc` > 1: zebra.shards runs its shards in processes and merges them (same output).
    `opened`: (batch_source of the data, its pool report), read already (--num-proc's parent does,
    once for every shard process); None: read here.
    """
    from tqdm.auto import tqdm

    if cfg.num_proc > 1:
        from zebra.shards import binarize_in_processes

        return binarize_in_processes(cfg, rule)
    where = check_config(cfg)
    sharded = cfg.num_shards > 1
    t0 = time.perf_counter()
    table_sha256 = file_sha256(cfg.benchmark)  # which table made these pairs, for training and the tables
    table = read_benchmark(cfg.benchmark)
    if opened is None:
        data = open_data(where, cfg.limit)
        opened = batch_source(data.dataset), data.pool_report  # the file names, not the memory map
        del data
    ds, pool_report = opened
    del opened
    t_load = time.perf_counter() - t0
    counts = Counts()
    extra = [("score_chosen", pa.float64()), ("score_rejected", pa.float64())] if cfg.strategy == "baseline" else []
    extra += [("input_row", pa.int64())] if sharded else []
    t_select = 0.0
    t1 = time.perf_counter()
    reliability = PairReliability.from_raw(table.raw, cfg.reliability_temperature)
    seen = None
    if cfg.entropy_quantile is not None:
        # First pass, selection only (no texts, no records): the pairs this run would write,
        # so that the entropy quantile is taken over exactly those pairs (memory: an M×M count).
        for arrow_batch in iter_batches(ds, cfg.batch_size):
            process_batch(to_batch(arrow_batch), table, cfg, Counts(), reliability, pairs_only=True, rule=rule)
        seen = Counter(reliability.pair_counts)
    reliability = reliability.resolved(cfg.max_entropy, cfg.entropy_quantile)
    t_select += time.perf_counter() - t1
    # deferred: the file is finished when the block ends and renamed with its meta (commit below)
    with RecordWriter(cfg.output, extra, background=True, deferred=True) as writer, tqdm(
        total=len(ds), unit="prompt", desc=f"binarize {cfg.strategy}", disable=not show_progress(cfg.progress)
    ) as bar:
        start = 0  # the input position of the batch's first row
        for arrow_batch in iter_batches(ds, cfg.batch_size):
            t1 = time.perf_counter()
            n_input, rows, ids = arrow_batch.num_rows, None, None
            if sharded:
                rows, ids = shard_rows(arrow_batch, cfg.num_shards, cfg.shard_index)
            if rows is None or rows.size:  # a shard's part of a batch may be empty
                batch = to_batch(arrow_batch, rows, ids)
                batch.row_ids = None if rows is None else start + rows
                records = process_batch(batch, table, cfg, counts, reliability, rule=rule)
                t_select += time.perf_counter() - t1
                writer.write(records)
                counts.rows_read += batch.n
                counts.rows_written += len(records)
                del batch, records
            start += n_input
            bar.update(n_input)
            del arrow_batch  # peak memory: one batch, not this one and the next
        # (a shard leaves this question to the merge: its rows may all lack ratings when others' do not)
        if cfg.strategy == "baseline" and cfg.score == "mean-rating" and not counts.ratings_seen and not sharded:
            # asked of the whole run, not batch by batch: a batch without ratings is no error by itself
            raise DataError(f"{where.source}: completions' 'annotations' hold no aspect ratings; "
                            "--score mean-rating needs them")
        if seen is not None and seen != reliability.pair_counts:  # inside the writer: no output is left
            raise ZebraError("the two passes over the data selected different pairs (is the data changing?); "
                             "the entropy quantile would be wrong, so nothing was written")
    if counts.model_not_in_table:
        log.warning("responses skipped, model not in %s: %s", cfg.benchmark,
                    ", ".join(f"{m} ({c})" for m, c in counts.model_not_in_table.most_common()))
    if counts.model_missing_score:
        log.warning("responses skipped, model has a missing score in %s: %s", cfg.benchmark,
                    ", ".join(f"{m} ({c})" for m, c in counts.model_missing_score.most_common()))
    meta = {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()
                     if applies(k, cfg.strategy)},
        "data": where.source,
        "data_files": [str(f) for f in where.files],  # every file the rows were read from (none for a hub id)
        "behaviour_table": {"models": list(table.models), "benchmarks": list(table.benchmarks),
                            "excluded_missing_score": list(table.excluded),
                            "mb_sup": dict(zip(table.models, np.round(table.mb_sup, 6).tolist())),
                            "sha256": table_sha256},
        "counts": counts.as_dict(),
        **({"pool": pool_report} if pool_report is not None else {}),
        "reliability": reliability.summary(),
        "seconds": {"load": round(t_load, 3), "select_and_build": round(t_select, 3),
                    "total": round(time.perf_counter() - t0, 3)},
        "versions": _versions(),
    }
    if sharded:  # what zebra.shards.merge needs beyond the counts: the pairs behind the reliability summary
        meta["shard"] = {"index": cfg.shard_index, "count": cfg.num_shards, "ratings_seen": counts.ratings_seen,
                         "pair_counts": [[c, r, n] for (c, r), n in sorted(reliability.pair_counts.items())],
                         "pairs_without_votes": reliability.unrated}
    writer.commit(meta)  # output and meta together, or neither
    return meta


def summary_line(meta: dict[str, Any]) -> str:
    """The one line a script prints after a run."""
    c, s = meta["counts"], meta["settings"]
    skipped = ", ".join(f"{k} {v}" for k, v in c["rows_skipped"].items() if v) or "none"
    rank = f"; mean kinship_rank {c['kinship_rank_mean']:.2f}" if c["kinship_rank_mean"] is not None else ""
    return (f"{s['strategy']}: wrote {c['rows_written']} of {c['rows_read']} prompts to {s['output']} "
            f"(skipped: {skipped}{rank}) in {meta['seconds']['total']:.1f}s")
