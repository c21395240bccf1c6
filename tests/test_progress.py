"""The progress bar: shown by default (stderr), silenced by --quiet and by TQDM_DISABLE=1."""

import logging

import pytest

from zebra import cli
from zebra.pipeline import BinarizeConfig, binarize

BAR = "binarize sup"  # the bar's description


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def test_the_bar_shows_by_default(tmp_path, capfd):
    binarize(BinarizeConfig("sup", str(tmp_path / "o.json")))
    assert BAR in capfd.readouterr().err


@pytest.mark.parametrize("value", ["1", "True"])
def test_tqdm_disable_silences_the_bar(tmp_path, capfd, monkeypatch, value):
    monkeypatch.setenv("TQDM_DISABLE", value)
    binarize(BinarizeConfig("sup", str(tmp_path / "o.json")))
    assert BAR not in capfd.readouterr().err


def test_tqdm_disable_0_keeps_the_bar(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "0")
    binarize(BinarizeConfig("sup", str(tmp_path / "o.json")))
    assert BAR in capfd.readouterr().err


def test_quiet_flag_silences_the_bar(tmp_path, capfd):
    ap = cli.binarize_parser("doc", behaviour_table="model_aware/benchmark.csv", tau=0.1, seed=42, max_entropy=None,
                             entropy_quantile=None, reliability_temperature=0.2, data="data/alpaca_eval")
    args = ap.parse_args(["--quiet"])
    cli.run_binarize("sup", str(tmp_path / "o.json"), args)
    out = capfd.readouterr()
    assert BAR not in out.err
    assert "sup: wrote" in out.out  # the one-line summary stays


# The same rule for every bar a library function draws when its caller asks for one (analyze.py's
# TF-IDF fit, select_potential.py's log-probs): a `disable=` argument hides TQDM_DISABLE from tqdm.

def test_tfidf_fit_bar_obeys_tqdm_disable(capfd, monkeypatch):
    from zebra.analysis import tfidf_fit

    tfidf_fit([["one text", "another text"]], progress=True)
    assert "TF-IDF fit" in capfd.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    tfidf_fit([["one text", "another text"]], progress=True)
    assert "TF-IDF fit" not in capfd.readouterr().err


def test_implicit_margins_bar_obeys_tqdm_disable(tiny, capfd, monkeypatch):
    from tests.test_potential import RECORDS
    from zebra import potential
    from zebra.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(tiny, dtype="float32")
    potential.implicit_margins(model, tokenizer, RECORDS[:1], batch_size=4, progress=True)
    assert "log-probs" in capfd.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    potential.implicit_margins(model, tokenizer, RECORDS[:1], batch_size=4, progress=True)
    assert "log-probs" not in capfd.readouterr().err
