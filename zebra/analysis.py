"""The paper's analyses as pure functions: behaviour-table views (Figures 4, 6, 10, 11), checks
on binarized outputs (Figure 8, kinship ranks, the TF–IDF check), the one schema check of the
record fields every analysis reads (`pairs_frame`), and the one interval method of every analysis
(`bootstrap_ci`: a percentile bootstrap that resamples prompts).

Plotting lives in `zebra.figures`, the cost calculation of Table 3 in `zebra.cost`, agreement with
an instance-level judge in `zebra.agreement`; this module only computes numbers, so every figure's
data can be tested without drawing it.

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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from zebra.behaviour import BehaviourTable, mb_sim
from zebra.errors import ZebraError
from zebra.jsonio import not_a_file

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
    if len(table.benchmarks) < 2 or len(table.models) < 3:
        raise AnalysisError(f"{table.source}: pca needs at least two benchmark columns and three models to draw two "
                            f"components; the table has {len(table.benchmarks)} and {len(table.models)}")
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
    if len(table.benchmarks) < 3 or len(table.models) < 2:
        raise AnalysisError(f"{table.source}: radar needs at least three benchmark columns (the axes) and two models; "
                            f"the table has {len(table.benchmarks)} and {len(table.models)}")
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
    if problem := not_a_file(path, "binarize output"):
        raise AnalysisError(f"{problem} (run the binarize_*.py script or pass --binarized DIR)")
    return read_records(path)  # a truncated or foreign file: its one-line ZebraError


PAIR_COLUMNS = ["prompt_id", "prompt", "chosen_model", "rejected_model", "chosen_text", "rejected_text", "kinship_rank"]


def _show(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _assistant_text(messages, where: str, field: str) -> str:
    """The response of a `chosen`/`rejected` field: a string, or the last assistant message of a
    list of {role, content} messages (the binarize scripts' and trl's conversational shape)."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        for msg in reversed(messages):
            if msg.get("role") == "assistant":
                if isinstance(msg.get("content"), str):
                    return msg["content"]
                raise AnalysisError(f"{where}: {field!r}'s assistant message has content "
                                    f"{_show(msg.get('content'))}, not a string")
        raise AnalysisError(f"{where}: {field!r} has no assistant message")
    raise AnalysisError(f"{where}: {field!r} must be a string or a list of {{role, content}} messages, "
                        f"not {_show(messages)}")


def _kinship_rank(rank, where: str) -> float:
    """null → NaN (not computed, e.g. the baseline); else a whole number >= 1."""
    if rank is None:
        return np.nan
    ok = isinstance(rank, (int, float)) and not isinstance(rank, bool) and np.isfinite(rank)
    if not ok or rank < 1 or not float(rank).is_integer():
        raise AnalysisError(f"{where}: 'kinship_rank' must be a whole number >= 1 or null, not {_show(rank)}")
    return float(rank)


def pairs_frame(records: Sequence, source: str = "<records>", start: int = 0) -> pd.DataFrame:
    """One row per record: prompt_id, prompt, chosen/rejected model and text, kinship_rank.

    The one schema check of what the analyses read from a binarize output: every record is an
    object whose `most_similar_pair` is two model names, `chosen`/`rejected` a response (text, or
    messages with an assistant turn of text), `prompt`/`prompt_id` text or absent, `kinship_rank`
    a whole number >= 1 or null; anything else is one AnalysisError naming the file, record and
    field (issue 19: `5`, `chosen=['hello']` and `kinship_rank: 'abc'` were tracebacks).
    A record without `prompt_id` (e.g. the original project's outputs) gets the id of its
    `prompt`, computed as the binarize scripts do, so it can still be joined to judge labels.
    `start`: the number of the first record (a batch of a longer file).
    """
    from zebra.data import prompt_id

    rows = []
    for k, rec in enumerate(records, start):
        where = f"{source}: record {k}"
        if not isinstance(rec, dict):
            raise AnalysisError(f"{where} is not a JSON object but {_show(rec)}")
        pair = rec.get("most_similar_pair")
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(m, str) and m for m in pair)):
            raise AnalysisError(f"{where}: 'most_similar_pair' must be [chosen_model, rejected_model] (two names), "
                                f"not {_show(pair)}")
        for field in ("prompt", "prompt_id"):
            if rec.get(field) is not None and not isinstance(rec[field], str):
                raise AnalysisError(f"{where}: {field!r} must be text, not {_show(rec[field])}")
        prompt = rec.get("prompt") or ""
        pid = rec.get("prompt_id") or (prompt_id(prompt) if prompt else None)
        rows.append({
            # interned: five outputs of 640k records share each id and name instead of a copy per record
            "prompt_id": sys.intern(pid) if pid is not None else None,
            "prompt": prompt,
            "chosen_model": sys.intern(pair[0]),
            "rejected_model": sys.intern(pair[1]),
            "chosen_text": _assistant_text(rec.get("chosen"), where, "chosen"),
            "rejected_text": _assistant_text(rec.get("rejected"), where, "rejected"),
            "kinship_rank": _kinship_rank(rec.get("kinship_rank"), where),
        })
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


BATCH_SIZE = 4096  # records held at once while a binarize output is read (issue 23: bounded memory at 10×)
PAIR_NUMBERS = ["prompt_id", "chosen_model", "rejected_model", "chosen_chars", "rejected_chars", "kinship_rank"]


def pair_numbers(pairs: pd.DataFrame, count_tokens: Callable[[Sequence[str]], np.ndarray] | None = None) -> pd.DataFrame:
    """A pairs_frame without its texts: what frequency, kinship and the agreement study read
    (prompt_id, the two models, each response's length in characters, kinship_rank; and in
    tokens of `count_tokens` when given). The texts are the bulk of a binarize output; dropping
    them per batch is what keeps `analyze.py` bounded in memory on 10× UltraFeedback."""
    out = pairs[["prompt_id", "chosen_model", "rejected_model"]].copy()
    for side in ("chosen", "rejected"):
        texts = pairs[f"{side}_text"]
        out[f"{side}_chars"] = texts.str.len().to_numpy(np.int64) if len(pairs) else np.zeros(0, np.int64)
        if count_tokens is not None:
            out[f"{side}_tokens"] = count_tokens(texts.tolist()) if len(pairs) else np.zeros(0, np.int64)
    out["kinship_rank"] = pairs["kinship_rank"].to_numpy(float)
    return out


def load_pairs(path: str | Path, batch_size: int = BATCH_SIZE,
               count_tokens: Callable[[Sequence[str]], np.ndarray] | None = None) -> pd.DataFrame:
    """`pair_numbers` of a whole binarize output, read `batch_size` records at a time: the same
    checks and messages as pairs_frame(load_records(path)), never more than a batch of texts."""
    from zebra.records import iter_records

    path = Path(path)
    if problem := not_a_file(path, "binarize output"):
        raise AnalysisError(f"{problem} (run the binarize_*.py script or pass --binarized DIR)")
    parts, start = [], 0
    for records in iter_records(path, batch_size):
        parts.append(pair_numbers(pairs_frame(records, str(path), start), count_tokens))
        start += len(records)
    if not parts:
        return pair_numbers(pairs_frame([], str(path)), count_tokens)
    return pd.concat(parts, ignore_index=True)


def iter_texts(path: str | Path, batch_size: int = BATCH_SIZE) -> Iterator[pd.DataFrame]:
    """A binarize output as pairs_frame batches of at most `batch_size` records (texts included),
    for an analysis that needs the words (TF–IDF) but not all of them at once."""
    from zebra.records import iter_records

    start = 0
    for records in iter_records(path, batch_size):
        yield pairs_frame(records, str(path), start)
        start += len(records)


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


def tfidf_fit(batches: Iterable[Sequence[str]], progress: bool = False) -> tuple[dict[str, int], np.ndarray]:
    """The vocabulary and IDF that `TfidfVectorizer().fit(corpus)` learns, from the corpus given
    in batches of texts: the same terms in the same (sorted) order and the same smoothed IDF,
    idf = ln((1 + n) / (1 + df)) + 1, computed as scikit-learn computes it. Only the document
    frequencies are kept, never the texts or their count matrix, so fitting on five 10× outputs
    holds one batch and the vocabulary (issue 23; an exact fit, not a sample or hashed features,
    so the README's numbers do not move)."""
    from collections import Counter

    from sklearn.feature_extraction.text import TfidfVectorizer
    from tqdm.auto import tqdm

    from zebra.progress import show_progress

    analyse = TfidfVectorizer().build_analyzer()
    df: Counter = Counter()
    n = 0
    with tqdm(unit="text", desc="TF-IDF fit", disable=not show_progress(progress), mininterval=1.0) as bar:
        for texts in batches:
            for text in texts:
                df.update(set(analyse(text)))
            n += len(texts)
            bar.update(len(texts))
    terms = sorted(df)
    counts = np.array([df[t] for t in terms], dtype=np.float64) + 1.0
    idf = np.full_like(counts, fill_value=n + 1)
    idf /= counts
    np.log(idf, out=idf)
    idf += 1.0
    return {t: k for k, t in enumerate(terms)}, idf


def tfidf_vectoriser(vocabulary: Mapping[str, int], idf: np.ndarray):
    """A TfidfVectorizer (defaults) with a fitted vocabulary and IDF (tfidf_fit), ready to transform;
    None for an empty vocabulary (scikit-learn refuses one)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not vocabulary:
        return None
    vec = TfidfVectorizer(vocabulary=dict(vocabulary))
    vec.idf_ = idf
    return vec


def pair_cosine(vec, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """TF–IDF cosine of a[k] and b[k] under a fitted vectoriser; an empty text has cosine 0.
    With no vocabulary at all (every text empty or without a word) every cosine is 0."""
    if len(a) != len(b):
        raise AnalysisError(f"tfidf_pair_cosine: {len(a)} first texts but {len(b)} second texts")
    if not len(a) or vec is None:
        return np.zeros(len(a))
    xa, xb = vec.transform(list(a)), vec.transform(list(b))
    return np.asarray(xa.multiply(xb).sum(axis=1)).ravel()


def tfidf_pair_cosine(a: Sequence[str], b: Sequence[str], corpus: Iterable[str] | None = None,
                      progress: bool = False) -> np.ndarray:
    """TF–IDF cosine between a[k] and b[k] for every k.

    The vocabulary and IDF are fitted on `corpus` (default: a and b together) so that pairs from
    two strategies are measured in one space; scikit-learn's defaults otherwise (word unigrams,
    lower-cased, smoothed IDF, L2 rows), as the paper gives no settings. An empty text has
    cosine 0 with anything. `progress`: a tqdm bar over the texts of the fit.
    """
    if len(a) != len(b):
        raise AnalysisError(f"tfidf_pair_cosine: {len(a)} first texts but {len(b)} second texts")
    if not len(a):
        return np.zeros(0)
    corpus = list(corpus) if corpus is not None else list(a) + list(b)
    return pair_cosine(tfidf_vectoriser(*tfidf_fit([corpus], progress)), a, b)


INTERVAL = "95% percentile bootstrap over prompts"  # named in every output that carries an interval


RESAMPLE_CELLS = 1 << 22  # indices drawn at once (32 MB): 200 resamples × 20k prompts, 6 × 640k


def resample_groups(n_groups: int, n_boot: int, seed: int, chunk: int = 200) -> Iterator[np.ndarray]:
    """Index matrices of `n_groups` groups drawn with replacement, `n_boot` rows in all, in chunks
    of at most `chunk` rows and RESAMPLE_CELLS indices: a 200 × 640k chunk (10× UltraFeedback's
    prompts) was 1 GB. The indices are the same whatever the chunking (numpy fills one row after
    another from the same stream; tested), so no interval moves."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(chunk, RESAMPLE_CELLS // max(n_groups, 1)))
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n_groups, (min(chunk, n_boot - start), n_groups))


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95, groups=None, weights=None,
                 chunk: int = 200) -> tuple[float, float, float]:
    """Σ values / Σ weights (the mean when `weights` is None) and its percentile bootstrap interval,
    resampling whole `groups` (prompts) with replacement: the one interval method of the analyses.

    A group is a prompt: the pairs of one prompt share its difficulty, so they are resampled
    together (with one value per prompt this is the ordinary bootstrap of the mean). The groups are
    put in a canonical order (by their sums) before resampling, so the interval depends only on
    the multiset of per-prompt outcomes, never on the order of a file: the same counts give the
    same interval in every table (issue 24: 57 of 68 had two, a Wilson and a bootstrap one).
    """
    values = np.asarray(values, dtype=float)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=float)
    if values.size == 0 or weights.sum() == 0:
        return (float("nan"),) * 3
    codes = np.arange(values.size) if groups is None else pd.factorize(np.asarray(groups, dtype=object))[0]
    unknown = codes < 0  # no prompt id: a group of its own
    codes[unknown] = codes.max(initial=-1) + 1 + np.arange(unknown.sum())
    num, den = np.bincount(codes, values), np.bincount(codes, weights)
    order = np.lexsort((den, num))
    num, den = num[order], den[order]
    stats = np.concatenate([num[idx].sum(axis=1) / np.where(den[idx].sum(axis=1) > 0, den[idx].sum(axis=1), np.nan)
                            for idx in resample_groups(num.size, n_boot, seed, chunk)])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(stats, [alpha, 1.0 - alpha])
    return float(num.sum() / den.sum()), float(lo), float(hi)


def tfidf_check(most: pd.DataFrame, least: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                progress: bool = False) -> tuple[dict, pd.DataFrame]:
    """`tfidf_summary` of two pairs_frames held in memory (texts included), the vocabulary fitted
    on all four text columns; `tfidf_check_files` is the same from files, in batches."""
    corpus = pd.concat([most["chosen_text"], most["rejected_text"], least["chosen_text"], least["rejected_text"]])
    vec = tfidf_vectoriser(*tfidf_fit([corpus.tolist()], progress))
    most = most.assign(cosine=pair_cosine(vec, most["chosen_text"].tolist(), most["rejected_text"].tolist()))
    least = least.assign(cosine=pair_cosine(vec, least["chosen_text"].tolist(), least["rejected_text"].tolist()))
    return tfidf_summary(most, least, n_boot, seed)


def tfidf_check_files(most: str | Path, least: str | Path, n_boot: int = 2000, seed: int = 0,
                      batch_size: int = BATCH_SIZE, progress: bool = False) -> tuple[dict, pd.DataFrame]:
    """`tfidf_check` of two binarize outputs read `batch_size` records at a time, twice: once to
    fit (tfidf_fit, the same vocabulary and IDF as one fit on all four text columns), once for
    each pair's cosine. Only the pair's ids, models and cosine are kept (issue 23)."""
    def texts():
        for path in (most, least):
            for frame in iter_texts(path, batch_size):
                yield frame["chosen_text"].tolist() + frame["rejected_text"].tolist()

    vec = tfidf_vectoriser(*tfidf_fit(texts(), progress))

    def cosines(path) -> pd.DataFrame:
        parts = [frame[["prompt_id", "chosen_model", "rejected_model"]].assign(
            cosine=pair_cosine(vec, frame["chosen_text"].tolist(), frame["rejected_text"].tolist()))
            for frame in iter_texts(path, batch_size)]
        return pd.concat(parts, ignore_index=True) if parts else \
            pd.DataFrame(columns=["prompt_id", "chosen_model", "rejected_model", "cosine"])

    return tfidf_summary(cosines(most), cosines(least), n_boot, seed)


def tfidf_summary(most: pd.DataFrame, least: pd.DataFrame, n_boot: int = 2000,
                  seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Mean TF–IDF cosine of the two responses of most- vs least-MB-SIM pairs (paper §5.1:
    0.4623 vs 0.4129), each with a bootstrap interval, and a paired bootstrap of the gap over the
    prompts both files cover. Prompts whose most and least pair coincide (two candidates only)
    are kept, as they are in the data, and counted. `most`, `least`: prompt_id, chosen_model,
    rejected_model and each pair's `cosine`."""
    result: dict = {}
    for name, df in (("most", most), ("least", least)):
        mean, lo, hi = bootstrap_ci(df["cosine"].to_numpy(), n_boot, seed, groups=df["prompt_id"].to_numpy())
        result[name] = {"n": int(len(df)), "mean": mean, "ci_low": lo, "ci_high": hi}
    keep = ["prompt_id", "chosen_model", "rejected_model", "cosine"]
    paired = most[keep].dropna(subset=["prompt_id"]).drop_duplicates("prompt_id").merge(
        least[keep].dropna(subset=["prompt_id"]).drop_duplicates("prompt_id"), on="prompt_id", suffixes=("_most", "_least"))
    gap = (paired["cosine_most"] - paired["cosine_least"]).to_numpy()
    mean, lo, hi = bootstrap_ci(gap, n_boot, seed)
    same = (
        paired[["chosen_model_most", "rejected_model_most"]].apply(frozenset, axis=1)
        == paired[["chosen_model_least", "rejected_model_least"]].apply(frozenset, axis=1)
    ) if len(paired) else pd.Series(dtype=bool)
    base = result["least"]["mean"]
    result["paired_gap"] = {"n": int(len(paired)), "same_pair": int(same.sum()), "mean": mean, "ci_low": lo, "ci_high": hi,
                            "relative": (result["most"]["mean"] - base) / base if base else None}
    result["settings"] = {"n_boot": n_boot, "seed": seed, "level": 0.95, "interval": INTERVAL,
                          "vectoriser": "sklearn TfidfVectorizer defaults"}
    per_record = pd.concat([most.assign(pairing="most"), least.assign(pairing="least")])[
        ["pairing", "prompt_id", "chosen_model", "rejected_model", "cosine"]]
    return result, per_record
