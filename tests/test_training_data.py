"""zebra.training_data: the preference_data block read from a real binarize run's meta, the checks
made once at load (text, weights), and the strategy travelling from binarize time to Table 5
without any folder or file name read as a strategy."""

import hashlib
import json
import logging
from pathlib import Path

import pytest

from tests.tiny import preference_record as pref
from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize
from zebra.pools import PoolOptions
from zebra.training_data import check_text, check_weights, load_training_data, preference_data

ROOT = Path(__file__).resolve().parents[1]
POOL = "data/alpaca_eval"  # the shipped real pool, as the binarize scripts name it (run from the repository root)


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def made(tmp_path: Path, strategy: str, name: str | None = None, **settings) -> Path:
    """A real binarize run on the shipped pool (a few prompts): records + <records>.meta.json."""
    out = tmp_path / (name or f"{strategy}.json")
    binarize(BinarizeConfig(strategy, str(out), data=POOL, progress=False, **settings))
    return out


def test_block_holds_the_settings_that_made_the_pairs_where_they_apply(tmp_path):
    combined = preference_data(made(tmp_path, "sup_sim", limit=3, rank_weight=0.7, similarity_weight=0.3,
                                    pool=PoolOptions(models_per_prompt=2, seed=7)))
    assert combined == {
        "strategy": "sup_sim", "tau": 0.1, "rank_weight": 0.7, "similarity_weight": 0.3, "seed": 7,
        "models_per_prompt": 2, "data": POOL, "limit": 3, "behaviour_table": "model_aware/benchmark.csv",
        "behaviour_table_sha256": hashlib.sha256(Path("model_aware/benchmark.csv").read_bytes()).hexdigest(),
        "meta": str(tmp_path / "sup_sim.json.meta.json")}
    sup = preference_data(made(tmp_path, "sup", limit=2, max_entropy=0.5))
    assert (sup["strategy"], sup["tau"], sup["max_entropy"], sup["seed"], sup["models_per_prompt"]) == ("sup", 0.1, 0.5, None, None)
    assert "rank_weight" not in sup  # SUP reads no weights: the meta leaves them out, so does the block
    baseline = preference_data(made(tmp_path, "baseline", limit=2, seed=5))
    assert (baseline["strategy"], baseline["seed"]) == ("baseline", 5) and "tau" not in baseline


def test_table_sha256_is_copied_from_the_meta(tmp_path):
    data = made(tmp_path, "sim", limit=2)
    meta_path = Path(f"{data}.meta.json")
    meta = json.loads(meta_path.read_text())
    meta["behaviour_table"]["sha256"] = "ab" * 32  # whatever the meta says, not a hash made now
    meta_path.write_text(json.dumps(meta))
    assert preference_data(data)["behaviour_table_sha256"] == "ab" * 32


def test_records_without_a_meta_are_unknown_with_a_warning_saying_how_to_name_them(tmp_path, caplog):
    data = tmp_path / "mine.json"
    data.write_text(json.dumps([pref(i) for i in range(2)]))
    with caplog.at_level(logging.WARNING, logger="zebra.training_data"):
        assert preference_data(data) == {"strategy": "unknown", "meta": None}
    assert "mine.json" in caplog.text and "--run-strategy" in caplog.text


def test_data_made_from_data_follows_the_metas_to_the_strategy(tmp_path):
    """select_potential.py's meta names its input (`settings.data`), not a strategy."""
    sup = made(tmp_path, "sup", limit=2)
    kept = tmp_path / "potential.json"
    kept.write_text(sup.read_text())
    Path(f"{kept}.meta.json").write_text(json.dumps({"settings": {"data": str(sup), "keep": 0.4}}))
    block = preference_data(kept)
    assert block["strategy"] == "sup" and block["meta"] == f"{kept}.meta.json"
    assert block["via"] == [f"{kept}.meta.json", f"{sup}.meta.json"]


@pytest.mark.parametrize("content, needle", [("{not json", "meta.json:1: not valid JSON"), ("[1, 2]", "meta.json: expected a JSON object, got a list of 2")])
def test_a_broken_meta_is_one_line_naming_it(tmp_path, content, needle):
    data = tmp_path / "d.json"
    data.write_text("[]")
    Path(f"{data}.meta.json").write_text(content)
    with pytest.raises(ZebraError, match=needle) as err:
        preference_data(data)
    assert "d.json.meta.json" in str(err.value) and "\n" not in str(err.value)


def test_load_training_data_carries_the_block(tmp_path):
    data = load_training_data(str(made(tmp_path, "sim", limit=3)), "dpo")
    assert data.preference_data["strategy"] == "sim" and data.counts["kept"] == len(data.dataset) == 3


# --------------------------------------------------------------------------- checks made once at load


def test_lone_surrogates_are_found_in_prompt_and_messages_by_row():
    rows = [pref(0), pref(1), pref(2)]
    check_text(rows, "d.json")
    rows[1]["rejected"][0]["content"] = "Question \udfff?"
    with pytest.raises(ZebraError, match=r"d\.json row 1: field 'rejected' holds a lone surrogate"):
        check_text(rows, "d.json")
    rows[1] = {**pref(1), "prompt": "\ud83d"}
    with pytest.raises(ZebraError, match=r"row 1: field 'prompt'"):
        check_text(rows, "d.json")


def _weights(values):
    rows = [pref(i, w=v) for i, v in enumerate(values)]
    return rows, [{"weight": float(v)} for v in values]


@pytest.mark.parametrize("values", [[0.0, 0.0], [1e-320, 0.0], [1e-46, 1e-300]])
def test_weights_that_sum_to_zero_in_float32_are_refused(values):
    with pytest.raises(ZebraError, match=r"d\.json: the weights in column 'w' sum to 0 over the 2 pairs"):
        check_weights(*_weights(values), "d.json", "w")


def test_a_weight_beyond_float32_is_refused_by_row_and_a_vanishing_one_warned(caplog):
    with pytest.raises(ZebraError, match=r"d\.json row 1: weight column 'w' is 1e\+39, beyond float32"):
        check_weights(*_weights([1.0, 1e39]), "d.json", "w")
    with caplog.at_level(logging.WARNING, logger="zebra.training_data"):
        check_weights(*_weights([1.0, 1e-320, 0.0]), "d.json", "w")
    assert "1 weight(s) in column 'w' are below float32's smallest" in caplog.text


# --------------------------------------------------------------------------- binarize time → Table 5


def test_strategy_recorded_at_binarize_time_reaches_table5_whatever_the_folders_are_called(tiny, tmp_path):
    """SIM pairs trained into a folder named `dpo-sup`, evaluated into `evals/m/dpo-sup`: the run
    lands in Table 5's SIM column, because the strategy travels in the data's meta → settings.json
    → summary.json. (Before, the folder name made it SUP.)"""
    import train_dpo
    from zebra import stats
    from zebra.evaluation import read_run_identity, write_summary
    from zebra.training_settings import TrainSettings

    sim = made(tmp_path, "sim", name="sup.json", limit=4)  # a data file misleadingly named too
    run = tmp_path / "runs" / "m" / "dpo-sup"
    settings = TrainSettings(method="dpo", data=str(sim), model=tiny, output_dir=str(run), max_steps=1, batch_size=2,
                             grad_accum=1, warmup_steps=0, max_length=512, bf16=False, gradient_checkpointing=False)
    train_dpo.train(settings)
    saved = json.loads((run / "settings.json").read_text())
    assert saved["preference_data"]["strategy"] == "sim" and saved["preference_data"]["limit"] == 4

    identity = read_run_identity(str(run), "m", None, None)
    assert (identity.method, identity.strategy, identity.strategy_source) == ("dpo", "sim", "settings.json preference_data")
    evals = tmp_path / "evals" / "m" / "dpo-sup"
    evals.mkdir(parents=True)
    write_summary(evals, {"arc_easy": {"accuracy": 0.5, "n": 2}}, {}, identity, 1.0, finished=True)
    base = tmp_path / "evals" / "m" / "dpo-baseline"
    base.mkdir()
    write_summary(base, {"arc_easy": {"accuracy": 0.25, "n": 2}}, {}, read_run_identity("m", None, "dpo", "baseline"),
                  1.0, finished=True)
    table = stats.table5(stats.collect_runs(tmp_path / "evals"))
    assert list(table.columns) == ["baseline", "sim"]
    assert table.loc[("arc_easy", "m", "dpo"), "sim"] == 0.5
