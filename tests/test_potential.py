"""Alignment potential (zebra.potential, select_potential.py): z-scores and top-k on known numbers,
the log-probability margin of a tiny model against a direct computation, the script end to end,
and SmolLM2 scoring a few real records (slow)."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zebra import potential
from zebra.errors import ZebraError
from zebra.potential import alignment_potential, explicit_margins, split_record, top_fraction, zscore

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_zscore_known_numbers():
    z = zscore(np.array([1.0, 2.0, 3.0, 4.0]))
    s = math.sqrt(1.25)  # population std, as numpy's default and the seed's `.std()`
    np.testing.assert_allclose(z, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s])
    np.testing.assert_array_equal(zscore(np.array([3.0, 3.0, 3.0])), [0.0, 0.0, 0.0])  # no spread: no signal
    z = zscore(np.array([1.0, np.nan, 3.0]))
    assert z[0] == -1.0 and np.isnan(z[1]) and z[2] == 1.0


def test_alignment_potential_and_top_k_known_numbers():
    explicit = np.array([1.0, 2.0, 3.0, 4.0])
    implicit = np.array([0.4, -0.1, 0.3, -0.2])  # |.| = 0.4 0.1 0.3 0.2: mean 0.25, std 0.1118
    s = math.sqrt(1.25)
    m = alignment_potential(explicit, implicit, lam=1.0)
    expected = np.array([-1.5 / s - 1.5 / s, -0.5 / s + 1.5 / s, 0.5 / s - 0.5 / s, 1.5 / s + 0.5 / s])
    np.testing.assert_allclose(m, expected, atol=1e-12)  # [-2.683, 0.894, 0, 1.789]
    assert top_fraction(m, 0.5).tolist() == [1, 3]
    assert top_fraction(m, 0.25).tolist() == [3]
    assert top_fraction(alignment_potential(explicit, implicit, lam=0.0), 0.5).tolist() == [2, 3]  # explicit only
    assert top_fraction(alignment_potential(explicit, implicit, lam=2.0), 0.75).tolist() == [1, 2, 3]
    assert top_fraction(m, 0.4).tolist() == [3]  # ⌊0.4 · 4⌋ = 1, as the seed's int(ratio · n)


def test_top_fraction_ties_nan_and_bounds():
    scores = np.array([1.0, np.nan, 1.0, 0.5])
    assert top_fraction(scores, 0.5).tolist() == [0]  # 3 scored, ⌊1.5⌋ = 1; the tie goes to the earlier
    assert top_fraction(scores, 1.0).tolist() == [0, 2, 3]  # the unscored record is never kept
    for bad in (0.0, 1.5):
        with pytest.raises(ZebraError, match="--keep"):
            top_fraction(scores, bad)


def test_same_selection_as_the_seed_code():
    """Seed 004's get_top_score_idx ('rm-xlogp'), literally, on random margins without ties."""
    rng = np.random.default_rng(1)
    rm, logp = rng.normal(size=200), rng.normal(size=200)
    for lam in (0.5, 1.0, 2.0):
        logp_abs = np.abs(logp)
        seed = (rm - rm.mean()) / rm.std() - lam * (logp_abs - logp_abs.mean()) / logp_abs.std()
        seed_idx = np.argsort(seed)[-int(0.4 * 200):]
        assert set(top_fraction(alignment_potential(rm, logp, lam), 0.4).tolist()) == set(seed_idx.tolist())


def test_explicit_margins():
    zebra = [{"mb_sup_chosen": 0.9, "mb_sup_rejected": 0.6}, {"mb_sup_chosen": 0.5, "mb_sup_rejected": 0.45}]
    m, src = explicit_margins(zebra)
    assert src == "mb_sup" and m == pytest.approx([0.3, 0.05])
    baseline = [{**zebra[0], "score_chosen": 9.0, "score_rejected": 4.5}, {"mb_sup_chosen": None, "score_chosen": 7, "score_rejected": 7.0}]
    m, src = explicit_margins(baseline)
    assert src == "score" and m.tolist() == [4.5, 0.0]
    m, src = explicit_margins(baseline, "mb_sup")
    assert m[0] == pytest.approx(0.3) and np.isnan(m[1])
    with pytest.raises(ZebraError, match="no record has numeric score"):
        explicit_margins(zebra, "score")


def test_split_record_both_formats():
    rec = {"prompt": "Q?", "chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "good"}],
           "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "bad"}]}
    assert split_record(rec, "r") == ([{"role": "user", "content": "Q?"}], "good", "bad")
    trl = {"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "good"}],
           "rejected": [{"role": "assistant", "content": "bad"}]}
    assert split_record(trl, "r") == ([{"role": "user", "content": "Q?"}], "good", "bad")
    assert split_record({"prompt": "Q?", "chosen": "good", "rejected": "bad"}, "r")[0] == [{"role": "user", "content": "Q?"}]
    with pytest.raises(ZebraError, match="row 3: no 'rejected'"):
        split_record({"prompt": "Q?", "chosen": "good"}, "row 3")


# ---------------------------------------------------------------- tiny model

RECORDS = [
    {"prompt": "What is the capital of France?", "mb_sup_chosen": 0.9, "mb_sup_rejected": 0.5,
     "chosen": "The capital of France is Paris.", "rejected": "No."},
    {"prompt": "Write a haiku about the sea.", "mb_sup_chosen": 0.8, "mb_sup_rejected": 0.7,
     "chosen": "Waves fold into foam, the tide keeps its patient time.", "rejected": "Good answer helpful correct clear."},
    {"prompt": "Q: 2 + 2 Options: (A) 3 (B) 4 (C) 5 Output:", "mb_sup_chosen": 0.6, "mb_sup_rejected": 0.2,
     "chosen": "The answer is (B).", "rejected": "The answer is (A). Bad answer wrong rude unclear, and rather long too."},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.tiny import make_tiny_model_dir
    from zebra.models import load_model_and_tokenizer

    folder = make_tiny_model_dir(tmp_path_factory.mktemp("tiny"))
    model, tokenizer = load_model_and_tokenizer(str(folder), dtype="float32")
    return folder, model, tokenizer


def direct_mean_logp(model, tokenizer, prompt: str, response: str) -> float:
    """One unpadded sequence, log_softmax over the vocabulary, the response's tokens only."""
    import torch

    msgs = [{"role": "user", "content": prompt}]
    text_prompt = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    text_full = tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": response}], tokenize=False)
    assert text_full.startswith(text_prompt)
    n_prompt = len(tokenizer(text_prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer(text_full, add_special_tokens=False)["input_ids"]
    # the scored part is the response and its end-of-turn, nothing of the prompt or the role header
    assert tokenizer.decode(ids[n_prompt:]) == response + "<|im_end|>\n"
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    per_token = [logp[p - 1, ids[p]].item() for p in range(n_prompt, len(ids))]
    return sum(per_token) / len(per_token)


def test_implicit_margin_matches_direct_computation(tiny):
    _, model, tokenizer = tiny
    got = potential.implicit_margins(model, tokenizer, RECORDS, batch_size=4)  # 6 sequences: padded batches
    for j, r in enumerate(RECORDS):
        c = direct_mean_logp(model, tokenizer, r["prompt"], r["chosen"])
        rej = direct_mean_logp(model, tokenizer, r["prompt"], r["rejected"])
        assert got["logp_chosen"][j] == pytest.approx(c, abs=1e-5)
        assert got["logp_rejected"][j] == pytest.approx(rej, abs=1e-5)
        assert got["implicit_margin"][j] == pytest.approx(c - rej, abs=1e-5)
    one = potential.implicit_margins(model, tokenizer, RECORDS, batch_size=1)  # batching changes nothing
    np.testing.assert_allclose(one["implicit_margin"], got["implicit_margin"], atol=1e-5)


def test_prompt_filling_max_length_gives_no_margin(tiny):
    _, model, tokenizer = tiny
    long = {**RECORDS[0], "prompt": "word " * 300}
    got = potential.implicit_margins(model, tokenizer, [RECORDS[0], long], max_length=64)
    assert np.isfinite(got["implicit_margin"][0]) and np.isnan(got["implicit_margin"][1])
    assert got["tokens_chosen"][1] == 0
    m = alignment_potential(np.array([0.4, 0.4]), got["implicit_margin"])
    assert top_fraction(m, 1.0).tolist() == [0]


def test_script_end_to_end(tiny, tmp_path):
    folder, _, _ = tiny
    data = tmp_path / "sup.jsonl"
    lines = (ROOT / "data" / "ultrafeedback_sample.jsonl").read_text().splitlines()[:12]
    (tmp_path / "uf.jsonl").write_text("\n".join(lines) + "\n")
    from zebra.pipeline import BinarizeConfig, binarize
    binarize(BinarizeConfig("sup", str(data), str(tmp_path / "uf.jsonl"), str(ROOT / "model_aware" / "benchmark.csv"),
                            progress=False))
    n = len(data.read_text().splitlines())
    out = tmp_path / "pot.parquet"
    proc = subprocess.run([sys.executable, "select_potential.py", "--data", str(data), "--model", str(folder),
                           "--keep", "0.5", "--lambda", "1.0", "--batch-size", "4", "--max-length", "256",
                           "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pyarrow.parquet as pq

    kept = pq.read_table(out).to_pylist()
    assert len(kept) == int(0.5 * n) > 0
    meta = json.loads((tmp_path / "pot.parquet.meta.json").read_text())
    assert meta["explicit"] == "mb_sup" and meta["counts"]["read"] == n and meta["counts"]["kept"] == len(kept)
    for r in kept:
        assert r["explicit_margin"] == pytest.approx(r["mb_sup_chosen"] - r["mb_sup_rejected"])
        assert r["implicit_margin"] == pytest.approx(r["logp_chosen"] - r["logp_rejected"])
        assert r["weight"] is not None  # the binarize fields travel with the record
    # the kept ones are the top half by M_AP, recomputed here from every record (batching moves
    # log-probs by ~1e-6, hence the tolerance)
    _, model, tokenizer = tiny
    from zebra.records import read_records

    everything = read_records(data)
    m = alignment_potential(explicit_margins(everything)[0],
                            potential.implicit_margins(model, tokenizer, everything, max_length=256)["implicit_margin"])
    cut = np.sort(m)[::-1][len(kept) - 1]
    assert all(r["alignment_potential"] >= cut - 1e-4 for r in kept)
    by_id = dict(zip((r["prompt_id"] for r in everything), m))
    assert all(r["alignment_potential"] == pytest.approx(by_id[r["prompt_id"]], abs=1e-4) for r in kept)
    # kept records stay in input order
    order = [r["prompt_id"] for r in everything]
    assert [order.index(r["prompt_id"]) for r in kept] == sorted(order.index(r["prompt_id"]) for r in kept)


# ---------------------------------------------------------------- SmolLM2 (slow)

@pytest.mark.slow
def test_smollm2_scores_real_records():
    from zebra.models import load_model_and_tokenizer, smollm2_gguf

    folder, name = smollm2_gguf()
    model, tokenizer = load_model_and_tokenizer(folder, name, dtype="float32")
    records = RECORDS + [
        {"prompt": "Name a primary colour.", "mb_sup_chosen": 0.7, "mb_sup_rejected": 0.3,
         "chosen": "Red is a primary colour.", "rejected": "colour primary a is Red."},
    ]
    t0 = time.perf_counter()
    got = potential.implicit_margins(model, tokenizer, records, batch_size=4)
    seconds = time.perf_counter() - t0
    assert np.isfinite(got["implicit_margin"]).all()
    assert ((got["logp_chosen"] < 0) & (got["logp_chosen"] > -15)).all()
    # a real instruct model prefers fluent English to the same words reversed
    assert got["implicit_margin"][3] > 0.5
    assert got["logp_chosen"][0] == pytest.approx(direct_mean_logp(model, tokenizer, records[0]["prompt"], records[0]["chosen"]), abs=1e-4)
    print(f"SmolLM2-135M: {len(records)} pairs scored in {seconds:.1f}s on CPU")
