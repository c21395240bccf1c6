"""publish.py / zebra/publish.py: binarize outputs of the shipped pool become a dataset folder that
`datasets` loads config by config and trl's DPOTrainer trains on unchanged; the card carries the
hub's YAML and the run's provenance; the folder is written whole or not at all, never over an input."""

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from zebra.pipeline import BinarizeConfig, binarize
from zebra.pools import PoolOptions

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "data" / "alpaca_eval"
TABLE = ROOT / "model_aware" / "benchmark.csv"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
LIMIT = 12


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Five binarize outputs of the first 12 prompts of the shipped pool (SUP+SIM with other weights)."""
    folder = tmp_path_factory.mktemp("binarized")
    settings = {"sup": {}, "sim": {}, "sim_least": {}, "sup_sim": {"rank_weight": 1.0, "similarity_weight": 0.3},
                "baseline": {"drop_sources": ("truthful_qa",)}}
    for strategy, extra in settings.items():
        binarize(BinarizeConfig(strategy, str(folder / f"{strategy}.json"), data=str(POOL), benchmark=str(TABLE),
                                limit=LIMIT, progress=False, pool=PoolOptions(), **extra))
    return folder


def _publish(*args, env=ENV):
    return subprocess.run([sys.executable, str(ROOT / "publish.py"), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def published(outputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "zebra"
    proc = _publish(outputs, "--output-dir", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout


def test_card_metadata_is_what_the_hub_reads(published, outputs):
    from huggingface_hub import DatasetCard

    out, stdout = published
    data = DatasetCard.load(out / "README.md").data.to_dict()
    assert data["license"] == "cc-by-nc-4.0"  # the shipped pool's prompts (data/alpaca_eval/SOURCE.md)
    assert data["language"] == ["en"] and data["task_categories"] == ["text-generation"]
    assert data["size_categories"] == ["n<1K"] and data["pretty_name"] == "ZEBRA preference pairs"
    assert [c["config_name"] for c in data["configs"]] == ["sup", "sim", "sim_least", "sup_sim", "baseline"]
    assert data["configs"][0]["data_files"] == [{"split": "train", "path": "sup/train.parquet"}]
    text = (out / "README.md").read_text()
    assert hashlib.sha256(TABLE.read_bytes()).hexdigest() in text
    assert (out / "behaviour_table.csv").read_bytes() == TABLE.read_bytes()
    assert "| sup_sim | SUP+SIM" in text and "| 1.0 / 0.3 |" in text and "| 0.1 |" in text
    meta = json.loads(Path(f"{outputs / 'baseline.json'}.meta.json").read_text())
    skipped = meta["counts"]["rows_skipped"]
    shown = ", ".join(f"{k} {v}" for k, v in skipped.items() if v) or "none"
    assert f"| baseline | {LIMIT} | {meta['counts']['rows_written']} | {shown} | none |" in text
    assert json.loads((out / "provenance" / "sup.meta.json").read_text()) == json.loads(
        Path(f"{outputs / 'sup.json'}.meta.json").read_text())
    assert "Not run on these files" in text  # no decontamination block in these metas
    assert f"wrote {out}" in stdout


def test_every_config_loads_with_datasets_in_trls_format(published, outputs, tmp_path):
    from datasets import load_dataset

    out, _ = published
    loaded = {}
    for config in ("sup", "sim", "sim_least", "sup_sim", "baseline"):
        # a fresh cache: `datasets` keys a local folder's cache by its name and files, not their content
        ds = load_dataset(str(out), config, split="train", cache_dir=str(tmp_path / "cache"))
        records = json.loads((outputs / f"{config}.json").read_text())
        assert len(ds) == len(records)
        row, record = ds[0], records[0]
        assert row["prompt"] == [{"content": record["prompt"], "role": "user"}]
        assert row["chosen"] == [{"content": record["chosen"][1]["content"], "role": "assistant"}]
        assert row["rejected"] == [{"content": record["rejected"][1]["content"], "role": "assistant"}]
        assert [row["chosen_model"], row["rejected_model"]] == record["most_similar_pair"]
        for name in ("mb_sup_chosen", "mb_sup_rejected", "mb_sim", "kinship_rank", "weight"):
            assert row[name] == record[name]
        loaded[config] = ds
    # the baseline's labels come from binarize; the others' from publish's own read of the pool:
    # the same (prompt, model) must carry the same label on both paths
    labels = {}
    for row in loaded["baseline"]:
        labels[(row["prompt_id"], row["chosen_model"])] = row["score_chosen"]
        labels[(row["prompt_id"], row["rejected_model"])] = row["score_rejected"]
        assert row["score_chosen"] > row["score_rejected"]  # the baseline's definition
    checked = 0
    for config in ("sup", "sim", "sim_least", "sup_sim"):
        for row in loaded[config]:
            for side in ("chosen", "rejected"):
                key = (row["prompt_id"], row[f"{side}_model"])
                if key in labels:
                    assert row[f"score_{side}"] == labels[key], (config, key)
                    checked += 1
    assert checked >= 8  # (10 with these 12 prompts)
    # models the judge never saw have no label (null), not a made-up one
    assert any(r["score_rejected"] is None for r in loaded["sim_least"])


def test_trls_dpo_trainer_takes_a_config_unchanged(published, tiny, tmp_path):
    import math

    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out, _ = published
    ds = load_dataset(str(out), "sup", split="train", cache_dir=str(tmp_path / "cache"))
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2, max_length=64,
                     report_to="none", save_strategy="no", logging_steps=1, bf16=False, dataloader_pin_memory=False,
                     activation_checkpointing=False)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny), args=args, train_dataset=ds,
                         processing_class=AutoTokenizer.from_pretrained(tiny))
    trainer.train()
    assert trainer.state.global_step == 1
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and math.isfinite(losses[0])


def test_the_cards_command_rebuilds_the_same_file(published, outputs, tmp_path):
    out, _ = published
    commands = re.search(r"```bash\n(.*?)```", (out / "README.md").read_text(), re.S).group(1).splitlines()
    (command,) = [c for c in commands if "binarize_combined.py" in c]
    args = shlex.split(command)[1:] + ["--output", str(tmp_path / "again.json")]  # argparse: the last --output wins
    assert "--rank-weight 1.0 --similarity-weight 0.3" in command and f"--limit {LIMIT}" in command
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "again.json").read_bytes() == (outputs / "sup_sim.json").read_bytes()


def test_agreement_numbers_go_into_the_card_and_absent_fields_are_tolerated(outputs, tmp_path):
    summary = {"analyses": ["agreement"], "results": {"agreement": {"study": {
        "K=4 SUP": {"decided": 99, "records": 402, "agreement": 0.798, "ci": [0.717, 0.869]},
        "K=4 SIM": {"agreement": 0.484}}}}}
    path = tmp_path / "summary_agreement.json"
    path.write_text(json.dumps(summary))
    proc = _publish(outputs, "--agreement", path, "--output-dir", tmp_path / "hf")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "hf" / "README.md").read_text()
    assert "| K=4 SUP | 99 | 402 | 0.798 | 0.717 – 0.869 |" in text and "| K=4 SIM | – | – | 0.484 | – |" in text
    path.write_text(json.dumps({"rows": {}}))
    proc = _publish(outputs, "--agreement", path, "--output-dir", tmp_path / "hf2")
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "no agreement rows" in proc.stderr
    assert not (tmp_path / "hf2").exists()


def test_push_to_hub_is_refused_offline_before_any_work(outputs, tmp_path):
    proc = _publish(outputs, "--output-dir", tmp_path / "hf", "--push-to-hub", "someone/zebra")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "HF_HUB_OFFLINE is set" in proc.stderr and not (tmp_path / "hf").exists()


def test_push_to_hub_creates_the_repo_and_uploads_the_folder(outputs, tmp_path, monkeypatch, capsys):
    import argparse

    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo, **kw: calls.append(("create", repo, kw)) or f"https://hub/{repo}")
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("zebra.hub.require_reachable", lambda what: calls.append(("probe", what)))
    spec = __import__("importlib.util").util.spec_from_file_location("publish_script", ROOT / "publish.py")
    script = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "hf"
    script.run(argparse.Namespace(data=[str(outputs / "sup.json")], output_dir=str(out), agreement=None, license=None,
                                  language="en", pretty_name="x", no_labels=True, push_to_hub="me/zebra", private=True))
    assert calls.pop(0) == ("probe", "--push-to-hub me/zebra")
    assert calls[0] == ("create", "me/zebra", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls[1][0] == "upload" and calls[1][1]["folder_path"] == str(out) and calls[1][1]["repo_type"] == "dataset"
    assert 'load_dataset("me/zebra", "sup"' in (out / "README.md").read_text()
    assert "pushed to https://hub/me/zebra" in capsys.readouterr().out


def test_a_failed_write_leaves_the_earlier_folder(published, outputs, monkeypatch):
    import argparse
    import importlib.util

    from zebra import publish as pub
    from zebra.errors import ZebraError

    out, _ = published
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(rows, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pub, "write_parquet", broken)
    spec = importlib.util.spec_from_file_location("publish_script", ROOT / "publish.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(ZebraError, match="No space left on device"):
        script.run(argparse.Namespace(data=[str(outputs)], output_dir=str(out), agreement=None, license=None,
                                      language="en", pretty_name="x", no_labels=True, push_to_hub=None, private=False))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_republishing_replaces_the_folder_it_wrote(outputs, tmp_path):
    out = tmp_path / "hf"
    assert _publish(outputs / "sup.json", "--output-dir", out, "--no-labels").returncode == 0
    proc = _publish(outputs / "sim.json", "--output-dir", out, "--no-labels")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "behaviour_table.csv", "provenance", "publish.json", "sim"]


@pytest.mark.parametrize("case, expected", [
    ("into_input", "would overwrite or hold the input"),
    ("holds_input", "would overwrite or hold the input"),
    ("foreign", "is a non-empty folder publish.py did not write"),
    ("same_strategy", "are both strategy sup"),
    ("no_meta", "no x.json.meta.json beside it"),
    ("unknown_pool", "cannot tell the licence of its pool"),
    ("private_alone", "--private applies to --push-to-hub"),
    # free text that lands in the card's YAML or its title line (a newline made a second YAML key)
    ("licence_newline", "--license 'mit\\nfoo: bar': not a hub licence id"),
    ("licence_spaces", "--license 'MIT License': not a hub licence id"),
    ("language_bad", "--language 'english': not an ISO 639 code"),
    ("pretty_newline", "--pretty-name 'x\\n---\\nevil: 1': the card's title must be one line of printable text"),
    ("pretty_empty", "--pretty-name '': the card's title must be one line of printable text"),
    ("repo_bad", "--push-to-hub 'my dataset': not a hub repo id"),
])
def test_bad_inputs_are_one_line_and_write_nothing(case, expected, outputs, tmp_path):
    out = tmp_path / "hf"
    args, env = [outputs, "--output-dir", out], ENV
    if case == "into_input":
        args = [outputs, "--output-dir", outputs / "hf"]
    elif case == "holds_input":
        args = [outputs, "--output-dir", outputs.parent]
    elif case == "foreign":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "same_strategy":
        other = tmp_path / "again"
        other.mkdir()
        for name in ("sup.json", "sup.json.meta.json"):
            (other / name).write_bytes((outputs / name).read_bytes())
        args = [outputs / "sup.json", other / "sup.json", "--output-dir", out]
    elif case == "no_meta":
        (tmp_path / "x.json").write_text("[]")
        args = [tmp_path / "x.json", "--output-dir", out]
    elif case == "unknown_pool":
        meta = json.loads(Path(f"{outputs / 'sup.json'}.meta.json").read_text())
        meta["settings"]["data"] = str(tmp_path / "my_pool.jsonl")
        (tmp_path / "sup.json").write_bytes((outputs / "sup.json").read_bytes())
        Path(f"{tmp_path / 'sup.json'}.meta.json").write_text(json.dumps(meta))
        args = [tmp_path / "sup.json", "--output-dir", out, "--no-labels"]
    elif case == "private_alone":
        args.append("--private")
    elif case.startswith(("licence", "language", "pretty", "repo")):
        flag, value = {"licence_newline": ("--license", "mit\nfoo: bar"), "licence_spaces": ("--license", "MIT License"),
                       "language_bad": ("--language", "english"), "pretty_newline": ("--pretty-name", "x\n---\nevil: 1"),
                       "pretty_empty": ("--pretty-name", ""), "repo_bad": ("--push-to-hub", "my dataset")}[case]
        args += [flag, value]
        env = {**ENV, "HF_HUB_OFFLINE": "0"}  # the repo id is checked before the offline refusal
    before = sorted(p for p in outputs.rglob("*"))
    proc = _publish(*args, env=env)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr
    assert sorted(p for p in outputs.rglob("*")) == before
    assert case == "foreign" or not out.exists()
