"""A folder where one file is expected is named as a folder, by every reader that checks a path
before reading it (a pre-check that said "no such file" sent users looking for a missing file)."""

import json

import pytest

from zebra import analysis, behaviour, shards
from zebra.agreement import read_parameter_counts
from zebra.errors import ZebraError
from zebra.pools import PoolOptions, resolve


@pytest.mark.parametrize("read", [
    behaviour.read_benchmark,
    analysis.load_records,
    analysis.load_pairs,
    shards.read_shard_meta,
    read_parameter_counts,
], ids=["behaviour-table", "load_records", "load_pairs", "shard-output", "parameter-counts"])
def test_a_folder_is_named_as_a_folder(tmp_path, read):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(ZebraError) as err:
        read(folder)
    assert f"{folder}: is a folder, not a" in str(err.value) and "no such" not in str(err.value)


def test_a_pool_json_naming_a_folder_says_so(tmp_path):
    (tmp_path / "answers").mkdir()
    (tmp_path / "pool.json").write_text(json.dumps({"responses": "answers"}), encoding="utf-8")
    with pytest.raises(ZebraError) as err:
        resolve(tmp_path, PoolOptions())
    assert "is a folder, not a" in str(err.value) and "no such" not in str(err.value)


def test_a_recipes_accelerate_config_that_is_a_folder_says_so(tmp_path, monkeypatch):
    from zebra.recipes import load_recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "acc").mkdir()
    recipe = tmp_path / "r" / "dpo-sup.yaml"
    recipe.parent.mkdir()
    recipe.write_text("script: train_dpo.py\ndata: d.jsonl\naccelerate_config: acc\nargs: {model: m, output_dir: o}\n", encoding="utf-8")
    with pytest.raises(ZebraError) as err:
        load_recipe(recipe)
    assert "accelerate_config acc: is a folder, not a file" in str(err.value)


@pytest.mark.parametrize("which", ["read_run", "collect_runs"])
def test_a_file_where_a_folder_of_results_is_expected_says_so(tmp_path, which):
    from zebra import stats

    not_folder = tmp_path / "summary.json"
    not_folder.write_text("{}", encoding="utf-8")
    with pytest.raises(ZebraError) as err:
        getattr(stats, which)(not_folder)
    assert f"{not_folder}: is a file, not a" in str(err.value) and "no such" not in str(err.value)
