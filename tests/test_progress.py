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
