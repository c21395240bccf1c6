"""The paper's analyses as pure functions: behaviour-table views (Figures 4, 6, 10, 11) and
checks on binarized outputs (Figure 8, kinship ranks, the TF–IDF check, agreement with GPT-4).

Plotting lives in `zebra.figures`, the cost calculation of Table 3 in `zebra.cost`; this module
only computes numbers, so every figure's data can be tested without drawing it.

Clustering distance (Figures 6 and 11). The paper cuts its dendrograms at 0.4 but does not say
on which distance. We default to the **root-mean-square difference of normalised scores**,
d(i, j) = ‖v_i − v_j‖₂ / √m, with **complete linkage**:
- it is the same quantity for a group of one benchmark (where it is |s_i − s_j|), two, three or
  six, so one cut of 0.4 means one thing everywhere ("no two models in a cluster differ by more
  than 0.4 normalised units, RMS over the group's benchmarks");
- cosine distance (1 − MB-SIM) ignores level: a model at 0.1 on both knowledge benchmarks has
  the same direction as one at 0.9, so at 0.4 it puts everything but pythia-12b into one
  knowledge cluster, and on one benchmark every positive score has cosine 1;
- complete linkage makes 0.4 a bound on a cluster's diameter, which the cut then means.
`metric="cosine"` (1 − MB-SIM, as MB-SIM is defined) and `"euclidean"` remain available.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from zebra.behaviour import BehaviourTable, mb_sim
from zebra.errors import ZebraError

log = logging.getLogger(__name__)

METRICS = ("rms", "euclidean", "cosine")
LINKAGES = ("complete", "average", "single", "ward")
ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
# overall_score is what UltraFeedback (and the paper's RLAIF baseline) ranks by; mean_rating is
# the Argilla-cleaned alternative (mean of the four aspect ratings, N/A ignored).
LABELS = ("overall_score", *ASPECTS, "mean_rating")
OUTCOMES = ("agree", "disagree", "tie", "missing")


class AnalysisError(ZebraError):
    """Input an analysis cannot use; the message is one line naming the file, record or setting."""


# --------------------------------------------------------------------------- behaviour table


def short_label(benchmark: str) -> str:
    """A plot label for a column: the text in parentheses if any ('…Evaluation(IFeval)' -> 'IFeval')."""
    found = re.search(r"\(([^()]+)\)\s*$", benchmark)
    return found.group(1).strip() if found else benchmark.strip()


def resolve_benchmarks(table: BehaviourTable, names: Sequence[str], setting: str = "--group") -> list[str]:
    """Match user-written benchmark names to the table's columns (exact, else case-insensitive on
    the column or its short label), so `IFeval` finds 'Instruction-Following Evaluation(IFeval)'."""
    out = []
    for name in names:
        key = name.strip()
        if key in table.benchmarks:
            out.append(key)
            continue
        hits = [b for b in table.benchmarks if key.lower() in (b.lower(), short_label(b).lower())]
        if len(hits) != 1:
            raise AnalysisError(
                f"{table.source}: {setting} names benchmark {key!r}, which matches "
                f"{'no' if not hits else 'several'} column(s); columns are {list(table.benchmarks)}"
            )
        out.append(hits[0])
    return out


@dataclass(frozen=True)
class PCAResult:
    models: tuple[str, ...]
    coords: np.ndarray  # (n_models, n_components)
    explained_variance_ratio: np.ndarray  # every component, not only the plotted ones
    components: np.ndarray  # (n_components, n_benchmarks)
    benchmarks: tuple[str, ...]


def behaviour_pca(table: BehaviourTable, n_components: int = 2) -> PCAResult:
    """PCA of the normalised behaviour vectors (Figure 6).

    The columns are already on one [0, 1] scale, so they are centred but not standardised
    (standardising would give a benchmark with a narrow spread the same weight as a wide one).
    Signs are fixed so that PC1 falls as MB-SUP rises and each later component's largest loading
    is positive: the picture does not flip between library versions, and its quadrants read as
    the paper's Figure 6 describes them (small models in the first, GPT-4/3.5/Bard in the
    second, LLaMA-based and >10B models in the third and fourth).
    """
    x = table.normalised
    centred = x - x.mean(axis=0)
    # PCA is the SVD of the centred matrix; numpy's is enough and spares importing scikit-learn
    _, sv, comps = np.linalg.svd(centred, full_matrices=False)
    ratio = sv**2 / (sv**2).sum()
    sup = table.mb_sup - table.mb_sup.mean()
    for k in range(comps.shape[0]):
        ref = (centred @ comps[k]) @ sup if k == 0 else comps[k][np.argmax(np.abs(comps[k]))]
        flip = ref > 0 if k == 0 else ref < 0  # PC1: high MB-SUP on the left, as in the paper
        if flip:
            comps[k] = -comps[k]
    k = min(n_components, comps.shape[0])
    return PCAResult(table.models, centred @ comps[:k].T, ratio, comps[:k], table.benchmarks)


def pairwise_distance(normalised: np.ndarray, metric: str = "rms") -> np.ndarray:
    """Condensed distance matrix between behaviour vectors (see the module docstring)."""
    from scipy.spatial.distance import pdist, squareform

    if metric not in METRICS:
        raise AnalysisError(f"--cluster-metric {metric!r} is not one of {', '.join(METRICS)}")
    m = normalised.shape[1]
    if metric == "cosine":
        if m == 1:
            log.warning("cosine distance on one benchmark is 0 for every positive pair; using |s_i - s_j| (rms)")
            return pdist(normalised, "euclidean")
        dist = np.clip(1.0 - mb_sim(normalised), 0.0, None)
        np.fill_diagonal(dist, 0.0)
        return squareform(dist, checks=False)
    d = pdist(normalised, "euclidean")
    return d / np.sqrt(m) if metric == "rms" else d


@dataclass(frozen=True)
class ClusterResult:
    name: str
    benchmarks: tuple[str, ...]
    models: tuple[str, ...]
    linkage: np.ndarray  # scipy linkage matrix, for the dendrogram
    labels: np.ndarray  # cluster id per model, 1.. in order of first appearance in `models`
    metric: str
    method: str
    cut: float

    @property
    def clusters(self) -> list[list[str]]:
        return [[m for m, lab in zip(self.models, self.labels) if lab == c] for c in range(1, self.labels.max() + 1)]


def cluster_models(
    table: BehaviourTable, name: str = "all", metric: str = "rms", method: str = "complete", cut: float = 0.4
) -> ClusterResult:
    """Hierarchical clustering of the models on `table`'s benchmarks, cut at distance `cut` (Figure 11)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if method not in LINKAGES:
        raise AnalysisError(f"--linkage {method!r} is not one of {', '.join(LINKAGES)}")
    if method == "ward" and metric == "cosine":
        raise AnalysisError("--linkage ward needs a Euclidean distance; use --cluster-metric rms or euclidean")
    z = linkage(pairwise_distance(table.normalised, metric), method)
    raw = fcluster(z, cut, criterion="distance")
    # fcluster's ids follow the tree, not the table; renumber so the listing reads in table order.
    order = {c: i + 1 for i, c in enumerate(dict.fromkeys(raw))}
    labels = np.array([order[c] for c in raw])
    return ClusterResult(name, table.benchmarks, table.models, z, labels, metric, method, cut)


def cluster_groups(
    table: BehaviourTable, groups: Mapping[str, Sequence[str]], metric: str = "rms",
    method: str = "complete", cut: float = 0.4,
) -> list[ClusterResult]:
    """One clustering per benchmark group, each on its own renormalised subset of the table."""
    return [
        cluster_models(table.subset(resolve_benchmarks(table, cols)), name, metric, method, cut)
        for name, cols in groups.items()
    ]


def radar_pairs(table: BehaviourTable, anchor: str | None = None) -> dict[str, tuple[str, str, float]]:
    """An anchor model's nearest and farthest neighbour by MB-SIM (Figure 4).

    Both panels share the anchor, as the paper's Figure 4 contrasts LLaMA-2-13b with its 7b
    sibling and with a dissimilar model. The default anchor is the first model (table order) of
    the table's most MB-similar pair; the table-wide least similar pair is not used because it
    is two near-zero vectors (starchat, pythia-12b) whose radar shows nothing.
    """
    sim = table.mb_sim
    n = len(table.models)
    if anchor is None:
        iu = np.triu_indices(n, k=1)
        anchor = table.models[iu[0][int(np.argmax(sim[iu]))]]
    if anchor not in table.index:
        raise AnalysisError(f"--anchor {anchor!r} is not a rated model in {table.source}; models are {list(table.models)}")
    i = table.index[anchor]
    others = np.array([j for j in range(n) if j != i])
    near, far = others[np.argmax(sim[i, others])], others[np.argmin(sim[i, others])]
    return {"similar": (anchor, table.models[near], float(sim[i, near])),
            "different": (anchor, table.models[far], float(sim[i, far]))}


# --------------------------------------------------------------------------- binarized records


def load_records(path: str | Path) -> list[dict]:
    """Read a binarize output (.json list, .jsonl or .parquet, as zebra.records writes them)."""
    from zebra.records import read_records

    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: no such binarize output (run the binarize_*.py script or pass --binarized DIR)")
    return read_records(path)  # a truncated or foreign file: its one-line ZebraError


def _assistant_text(messages, where: str) -> str:
    if isinstance(messages, str):
        return messages
    for msg in reversed(messages or []):
        if msg.get("role") == "assistant":
            return str(msg.get("content", ""))
    raise AnalysisError(f"{where}: no assistant message")


def pairs_frame(records: Sequence[Mapping], source: str = "<records>") -> pd.DataFrame:
    """One row per record: prompt_id, prompt, chosen/rejected model and text, kinship_rank.

    A record without `prompt_id` (e.g. the original project's outputs) gets the id of its
    `prompt`, computed as the binarize scripts do, so it can still be joined to GPT-4 labels.
    """
    from zebra.data import prompt_id

    rows = []
    for k, rec in enumerate(records):
        where = f"{source}: record {k}"
        pair = rec.get("most_similar_pair")
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise AnalysisError(f"{where}: 'most_similar_pair' must be [chosen_model, rejected_model], got {pair!r}")
        rank = rec.get("kinship_rank")
        rows.append({
            "prompt_id": rec.get("prompt_id") or (prompt_id(rec["prompt"]) if rec.get("prompt") else None),
            "prompt": rec.get("prompt", ""),
            "chosen_model": str(pair[0]),
            "rejected_model": str(pair[1]),
            "chosen_text": _assistant_text(rec.get("chosen"), where + " 'chosen'"),
            "rejected_text": _assistant_text(rec.get("rejected"), where + " 'rejected'"),
            "kinship_rank": np.nan if rank is None else float(rank),
        })
    cols = ["prompt_id", "prompt", "chosen_model", "rejected_model", "chosen_text", "rejected_text", "kinship_rank"]
    return pd.DataFrame(rows, columns=cols)


def choice_frequency(pairs: Mapping[str, pd.DataFrame], order: Sequence[str] = ()) -> pd.DataFrame:
    """How often each model is chosen and rejected, per strategy (Figure 8).

    Long format: strategy, model, chosen, rejected, chosen_share, rejected_share. Models follow
    `order` (e.g. the behaviour table, strongest first), then any others alphabetically.
    """
    out = []
    for strategy, df in pairs.items():
        chosen = df["chosen_model"].value_counts()
        rejected = df["rejected_model"].value_counts()
        seen = set(chosen.index) | set(rejected.index)
        models = [m for m in order if m in seen] + sorted(seen - set(order))
        n = max(len(df), 1)
        for m in models:
            c, r = int(chosen.get(m, 0)), int(rejected.get(m, 0))
            out.append({"strategy": strategy, "model": m, "chosen": c, "rejected": r,
                        "chosen_share": c / n, "rejected_share": r / n})
    return pd.DataFrame(out, columns=["strategy", "model", "chosen", "rejected", "chosen_share", "rejected_share"])


def kinship_distribution(pairs: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Counts of each kinship_rank per strategy, and per strategy its n, mean and missing count."""
    rows, stats = [], {}
    for strategy, df in pairs.items():
        ranks = df["kinship_rank"].dropna()
        for rank, count in ranks.astype(int).value_counts().sort_index().items():
            rows.append({"strategy": strategy, "kinship_rank": int(rank), "count": int(count)})
        stats[strategy] = {"n": int(len(ranks)), "mean": float(ranks.mean()) if len(ranks) else None,
                           "missing": int(df["kinship_rank"].isna().sum())}
    return pd.DataFrame(rows, columns=["strategy", "kinship_rank", "count"]), stats


# --------------------------------------------------------------------------- TF–IDF check


def tfidf_pair_cosine(a: Sequence[str], b: Sequence[str], corpus: Iterable[str] | None = None,
                      progress: bool = False) -> np.ndarray:
    """TF–IDF cosine between a[k] and b[k] for every k.

    The vocabulary and IDF are fitted on `corpus` (default: a and b together) so that pairs from
    two strategies are measured in one space; scikit-learn's defaults otherwise (word unigrams,
    lower-cased, smoothed IDF, L2 rows), as the paper gives no settings. An empty text has
    cosine 0 with anything. `progress`: a tqdm bar over the texts tokenised (fit, then a and b):
    on full UltraFeedback that takes a minute or more.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from tqdm.auto import tqdm

    if len(a) != len(b):
        raise AnalysisError(f"tfidf_pair_cosine: {len(a)} first texts but {len(b)} second texts")
    if not len(a):
        return np.zeros(0)
    corpus = list(corpus) if corpus is not None else list(a) + list(b)
    with tqdm(total=len(corpus) + 2 * len(a), unit="text", desc="TF-IDF", disable=not progress, mininterval=1.0) as bar:
        def counted(texts):  # the vectoriser takes any iterable: the bar advances as it tokenises
            for text in texts:
                bar.update()
                yield text

        vec = TfidfVectorizer().fit(counted(corpus))
        xa, xb = vec.transform(counted(a)), vec.transform(counted(b))
    return np.asarray(xa.multiply(xb).sum(axis=1)).ravel()


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95, chunk: int = 200
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of the mean (resampling the values with replacement)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    # chunks keep the index matrix small on 64k-row inputs
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        means[start:start + k] = values[rng.integers(0, values.size, (k, values.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(values.mean()), float(lo), float(hi)


def tfidf_check(most: pd.DataFrame, least: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                progress: bool = False) -> tuple[dict, pd.DataFrame]:
    """Mean TF–IDF cosine of the two responses of most- vs least-MB-SIM pairs (paper §5.1:
    0.4623 vs 0.4129), each with a bootstrap interval, and a paired bootstrap of the gap over the
    prompts both files cover. Prompts whose most and least pair coincide (two candidates only)
    are kept, as they are in the data, and counted."""
    corpus = pd.concat([most["chosen_text"], most["rejected_text"], least["chosen_text"], least["rejected_text"]])
    most = most.assign(cosine=tfidf_pair_cosine(most["chosen_text"].tolist(), most["rejected_text"].tolist(), corpus, progress))
    least = least.assign(cosine=tfidf_pair_cosine(least["chosen_text"].tolist(), least["rejected_text"].tolist(), corpus, progress))
    result: dict = {}
    for name, df in (("most", most), ("least", least)):
        mean, lo, hi = bootstrap_ci(df["cosine"].to_numpy(), n_boot, seed)
        result[name] = {"n": int(len(df)), "mean": mean, "ci_low": lo, "ci_high": hi}
    keep = ["prompt_id", "chosen_model", "rejected_model", "cosine"]
    paired = most[keep].dropna(subset=["prompt_id"]).drop_duplicates("prompt_id").merge(
        least[keep].dropna(subset=["prompt_id"]).drop_duplicates("prompt_id"), on="prompt_id", suffixes=("_most", "_least"))
    gap = (paired["cosine_most"] - paired["cosine_least"]).to_numpy()
    mean, lo, hi = bootstrap_ci(gap, n_boot, seed + 1)
    same = (
        paired[["chosen_model_most", "rejected_model_most"]].apply(frozenset, axis=1)
        == paired[["chosen_model_least", "rejected_model_least"]].apply(frozenset, axis=1)
    ) if len(paired) else pd.Series(dtype=bool)
    base = result["least"]["mean"]
    result["paired_gap"] = {"n": int(len(paired)), "same_pair": int(same.sum()), "mean": mean, "ci_low": lo, "ci_high": hi,
                            "relative": (result["most"]["mean"] - base) / base if base else None}
    result["settings"] = {"n_boot": n_boot, "seed": seed, "level": 0.95, "vectoriser": "sklearn TfidfVectorizer defaults"}
    per_record = pd.concat([most.assign(pairing="most"), least.assign(pairing="least")])[
        ["pairing", "prompt_id", "chosen_model", "rejected_model", "cosine"]]
    return result, per_record


# --------------------------------------------------------------------------- agreement with GPT-4


def ratings_frame(ds, batch_size: int = 16384) -> pd.DataFrame:
    """GPT-4 labels per (prompt_id, model) for every completion of an UltraFeedback-schema dataset.

    prompt_id is `zebra.data.prompt_id(instruction)`, the id the binarize scripts write, so a
    record joins back to its row. Works on Arrow batches (zebra.data) so that 64k rows × 4
    completions never become Python dicts; the response length is kept to tell apart two
    completions of one model under one prompt_id (UltraFeedback repeats some instructions).
    """
    import warnings

    import pyarrow as pa

    from zebra.data import iter_batches, to_batch

    parts = []
    for arrow_batch in iter_batches(ds, batch_size):
        b = to_batch(arrow_batch)
        rows, slots = np.nonzero(b.pos >= 0)
        ids = np.array(b.prompt_ids, dtype=object)
        overall = b.scores("overall_score") if "overall_score" in b.flat.type.names else np.full(b.pos.shape, np.nan)
        rated = "annotations" in b.flat.type.names and pa.types.is_struct(b.flat.field("annotations").type)
        aspects = b.ratings()[rows, slots] if rated else np.full((rows.size, len(ASPECTS)), np.nan)
        with warnings.catch_warnings():  # all four N/A: mean_rating is NaN, counted as missing
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_rating = np.nanmean(aspects, axis=1)
        parts.append(pd.DataFrame({
            "prompt_id": ids[rows], "model": b.model[rows, slots], "length": b.lengths[rows, slots],
            "overall_score": overall[rows, slots], **{a: aspects[:, k] for k, a in enumerate(ASPECTS)},
            "mean_rating": mean_rating,
        }))
    cols = ["prompt_id", "model", "length", *LABELS]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _side(pairs: pd.DataFrame, ratings: pd.DataFrame, side: str) -> pd.DataFrame:
    """The labels of the chosen (or rejected) response of each record, matched by prompt_id and
    the completion's own model; when one prompt_id holds several completions of that model
    (duplicate instructions), the one whose response has the record's length wins."""
    left = pairs[["prompt_id", f"{side}_model", f"{side}_text"]].reset_index(names="record")
    left["text_length"] = left[f"{side}_text"].str.len()
    merged = left.merge(ratings, left_on=["prompt_id", f"{side}_model"], right_on=["prompt_id", "model"], how="left")
    merged["exact"] = merged["length"] == merged["text_length"]
    merged = merged.sort_values(["record", "exact"], ascending=[True, False]).drop_duplicates("record")
    return merged.set_index("record").loc[left["record"], list(LABELS)]


def agreement_outcomes(pairs: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
    """Per record and label: 'agree' when GPT-4 rates the chosen response higher, 'disagree' when
    lower, 'tie' when equal, 'missing' when either rating is N/A or the row is not found."""
    chosen, rejected = _side(pairs, ratings, "chosen"), _side(pairs, ratings, "rejected")
    c, r = chosen.to_numpy(float), rejected.to_numpy(float)
    outcome = np.select([np.isnan(c) | np.isnan(r), c > r, c < r], ["missing", "agree", "disagree"], "tie")
    out = pd.DataFrame(outcome, columns=list(LABELS))
    out.insert(0, "rejected_model", pairs["rejected_model"].to_numpy())
    out.insert(0, "chosen_model", pairs["chosen_model"].to_numpy())
    out.insert(0, "prompt_id", pairs["prompt_id"].to_numpy())
    return out


def wilson_interval(k, n, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for proportions k/n, elementwise (well-behaved at 0, 1 and small n;
    NaN where n = 0)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)  # rounding can leave 0 by 1e-17


def agreement_summary(outcomes: Mapping[str, pd.DataFrame], by_pair: bool = False) -> pd.DataFrame:
    """Counts of each outcome per strategy and label (and per chosen/rejected pair if `by_pair`).

    `agreement` = agree / (agree + disagree) with a Wilson 95% interval: ties are counted
    apart, not as half-wins; `agree_all` = agree / (agree + disagree + tie) is the stricter reading.
    """
    keys = ["chosen_model", "rejected_model"] if by_pair else []
    long = pd.concat([
        df.melt(id_vars=["chosen_model", "rejected_model"], value_vars=list(LABELS), var_name="label",
                value_name="outcome").assign(strategy=strategy)
        for strategy, df in outcomes.items()
    ], ignore_index=True)
    # categoricals keep the caller's strategy order and the LABELS order in the output
    long["strategy"] = pd.Categorical(long["strategy"], categories=list(outcomes))
    long["label"] = pd.Categorical(long["label"], categories=list(LABELS))
    group = ["strategy", *keys, "label"]
    counts = (long.groupby([*group, "outcome"], observed=True).size()
              .unstack("outcome", fill_value=0).reindex(columns=list(OUTCOMES), fill_value=0))
    counts.columns.name = None
    out = counts.reset_index()
    out.insert(len(group), "records", counts.sum(axis=1).to_numpy())
    decided = out["agree"] + out["disagree"]
    out["agreement"] = out["agree"] / decided.where(decided > 0)
    out["ci_low"], out["ci_high"] = wilson_interval(out["agree"], decided)
    tied = decided + out["tie"]
    out["agree_all"] = out["agree"] / tied.where(tied > 0)
    for col in ("strategy", "label"):
        out[col] = out[col].astype(str)
    return out


# --------------------------------------------------------------------------- the GPT-4 agreement study

FLOOR = "Random (MB-SUP)"  # the study's floor: a random pair of rated responses, chosen by MB-SUP


def random_pairs(ds, table: BehaviourTable, seed: int = 42, batch_size: int = 16384) -> pd.DataFrame:
    """The study's floor: per prompt, two of its usable rated responses drawn at random, the one
    whose model has the higher MB-SUP chosen (ties: table order), as a `pairs_frame`.

    "Usable" is exactly what the binarize scripts use (zebra.pipeline.usable_slots: rated model,
    non-empty, no repeated model or text), and the draw is the baseline's counter-based one
    (zebra.strategies.uniform_keys of seed, prompt and slot): the same pairs whatever the batching
    or --limit. No τ: the floor asks what MB-SUP alone does with an arbitrary pair.
    """
    from zebra.data import iter_batches, to_batch
    from zebra.data import usable_slots
    from zebra.pipeline import Counts
    from zebra.strategies import uniform_keys

    parts = []
    sup = table.mb_sup
    for arrow_batch in iter_batches(ds, batch_size):
        b = to_batch(arrow_batch)
        usable, midx = usable_slots(b, table, Counts(), require_rated=True)
        hashes = np.array([int(h[:16], 16) for h in b.prompt_ids], dtype=np.uint64)
        keys = np.where(usable, uniform_keys(hashes, usable.shape[1], seed), -1.0)
        order = np.argsort(-keys, axis=1, kind="stable")[:, :2]
        rows = np.flatnonzero(usable.sum(axis=1) >= 2)
        a, c = order[rows, 0], order[rows, 1]
        ma, mc = midx[rows, a], midx[rows, c]
        a_wins = (sup[ma] > sup[mc]) | ((sup[ma] == sup[mc]) & (ma <= mc))
        c_slot, r_slot = np.where(a_wins, a, c), np.where(a_wins, c, a)
        parts.append(pd.DataFrame({
            "prompt_id": [b.prompt_ids[i] for i in rows], "prompt": [b.instruction[i] for i in rows],
            "chosen_model": b.model[rows, c_slot].astype(str), "rejected_model": b.model[rows, r_slot].astype(str),
            "chosen_text": b.texts(rows, c_slot), "rejected_text": b.texts(rows, r_slot), "kinship_rank": np.nan,
        }))
    cols = ["prompt_id", "prompt", "chosen_model", "rejected_model", "chosen_text", "rejected_text", "kinship_rank"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def agreement_study(pairs: Mapping[str, pd.DataFrame], ratings: pd.DataFrame, label: str = "overall_score",
                    min_gap: float = 0.0, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per strategy: how many pairs the judge decides, and how often it sides with the chosen one.

    A pair is *decided* when both responses have a judge label and they differ by more than
    `min_gap` (AlpacaEval's binary judge: one response beat the reference and the other did not;
    a score or weighted preference: a gap). `agreement` = agree / decided, with a percentile
    bootstrap 95% interval over the decided pairs (`n_boot` resamples, seeded). Columns:
    strategy, records, labelled (both sides have a label), decided, agree, disagree, tie,
    missing, decided_share, agreement, ci_low, ci_high.
    """
    if label not in LABELS:
        raise AnalysisError(f"agreement label {label!r} is not one of {', '.join(LABELS)}")
    if not (np.isfinite(min_gap) and min_gap >= 0):
        raise AnalysisError(f"--min-gap must be a finite number >= 0, not {min_gap}")
    out = []
    for k, (strategy, df) in enumerate(pairs.items()):
        c, r = _side(df, ratings, "chosen")[label].to_numpy(float), _side(df, ratings, "rejected")[label].to_numpy(float)
        missing = np.isnan(c) | np.isnan(r)
        gap = np.where(missing, 0.0, c - r)
        agree, disagree = ~missing & (gap > min_gap), ~missing & (gap < -min_gap)
        decided = int(agree.sum() + disagree.sum())
        wins = np.r_[np.ones(int(agree.sum())), np.zeros(int(disagree.sum()))]
        mean, lo, hi = bootstrap_ci(wins, n_boot, seed + k)
        out.append({"strategy": strategy, "records": int(len(df)), "labelled": int((~missing).sum()), "decided": decided,
                    "agree": int(agree.sum()), "disagree": int(disagree.sum()),
                    "tie": int((~missing).sum()) - decided, "missing": int(missing.sum()),
                    "decided_share": decided / len(df) if len(df) else float("nan"),
                    "agreement": mean, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(out)
