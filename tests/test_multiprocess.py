"""Two processes for real: `accelerate launch` on the shipped DDP config, on CPU (gloo).

The grid's multi-GPU path, checked where there is no GPU, the way docs/training.md tells a user:

    ACCELERATE_USE_CPU=true accelerate launch --config_file recipes/accelerate/ddp.yaml \
        --num_processes 2 train_dpo.py ...

(`ACCELERATE_USE_CPU=true` makes each of the two processes that the config's launcher starts use
the CPU and gloo; `--cpu` instead would pick accelerate's single-process launcher.) A spy around
`zebra.run_folder.save_run` writes each rank's view after training: world size, engine, and a hash of
every parameter, so the test can see that DDP kept the two copies identical.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.tiny import make_tiny_model_dir, preference_record
from zebra.models import load_model_and_tokenizer

ROOT = Path(__file__).resolve().parents[1]

SPY = """
import hashlib, json, os, runpy, sys
from pathlib import Path
from zebra import run_folder, trainers, training_settings

if os.environ.get("SPY_FSDP_ON_CPU"):
    # accelerate 1.15 enables its FSDP plugin only for GPU-like process groups: present the CPU/gloo
    # group as one, and force bf16 as on a GPU (transformers' use_cpu is its way to bf16 on a CPU)
    import accelerate.state as state
    from accelerate.utils import DistributedType

    _init = state.AcceleratorState.__init__

    def init(self, *args, **kwargs):
        shared = state.PartialState._shared_state
        if shared.get("distributed_type") == DistributedType.MULTI_CPU:
            shared["distributed_type"] = DistributedType.MULTI_GPU
        _init(self, *args, **kwargs)

    state.AcceleratorState.__init__ = init
    training_settings.bf16_available = lambda: True
    _common_args = trainers._common_args
    trainers._common_args = lambda *args: {**_common_args(*args), "use_cpu": True}

save_run = run_folder.save_run


def digest(state_dict, dtype):
    h = hashlib.sha256()
    for name, value in sorted(state_dict.items()):
        h.update(name.encode() + value.detach().to(dtype).float().contiguous().numpy().tobytes())
    return h.hexdigest()


def spy(trainer, *args, **kwargs):
    out = save_run(trainer, *args, **kwargs)
    import torch

    model = trainer.accelerator.unwrap_model(trainer.model)
    # FSDP2 holds DTensor shards: gather each (every rank, same order) to hash the whole model
    state = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}
    rank = trainer.accelerator.process_index
    Path(os.environ["SPY_DIR"], f"rank{rank}.json").write_text(json.dumps({
        "world_size": trainer.accelerator.num_processes, "distributed_type": trainer.accelerator.distributed_type.name,
        "params": digest(state, torch.float32), "params_bf16": digest(state, torch.bfloat16),
        "logs": [h for h in trainer.state.log_history if "loss" in h]}))
    return out


run_folder.save_run = spy
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def params_hash(model, dtype=torch.float32) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode() + value.detach().to(dtype).float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def launch(config, spy, script, data, tiny, out, spy_dir, extra=(), env_extra=None):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config,
           "--num_processes", "2", "--main_process_port", "0", spy, script, "--data", data, "--model", tiny,
           "--output-dir", str(out), "--max-steps", "3", "--batch-size", "2", "--grad-accum", "1", "--max-length", "32",
           "--warmup-steps", "0", "--lr", "1e-2", "--no-gradient-checkpointing", *extra]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT), "SPY_DIR": str(spy_dir), **(env_extra or {})}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def pref(i):
    return preference_record(i, weight=1.0 + i % 3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("mp")
    tiny = make_tiny_model_dir(root / "tiny")
    data = root / "toy.json"
    data.write_text(json.dumps([pref(i) for i in range(16)]))
    spy = root / "spy.py"
    spy.write_text(SPY)
    return root, str(tiny), str(data), str(spy)


@pytest.mark.slow
@pytest.mark.parametrize("script, extra", [
    ("train_dpo.py", []),
    ("train_dpo.py", ["--weight-column", "weight"]),
    ("train_sft.py", []),
], ids=["dpo", "weighted-dpo", "sft"])
def test_two_cpu_processes_on_the_shipped_ddp_config(setup, script, extra, tmp_path):
    root, tiny, data, spy = setup
    out = tmp_path / "run"
    spy_dir = tmp_path / "spy"
    spy_dir.mkdir()
    # no --mixed_precision: ddp.yaml's bf16 reaches the script, which must fall back to fp32 (no bf16 GPU)
    done = launch("recipes/accelerate/ddp.yaml", spy, script, data, tiny, out, spy_dir, extra)
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [json.loads((spy_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and {r["distributed_type"] for r in ranks} == {"MULTI_CPU"}
    assert ranks[0]["params"] == ranks[1]["params"]  # DDP's all-reduce kept the two copies identical
    method = script.removeprefix("train_").removesuffix(".py")
    assert done.stdout.count(f"{method}: saved") == 1  # one summary line, from rank 0

    # one output folder, written once: the model, tokenizer and the three JSON files, nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "spy"]
    assert not [p for p in out.iterdir() if p.is_dir()]
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["engine"], settings["num_processes"], settings["world_batch_size"]) == ("ddp", 2, 4)
    assert settings["precision"] == "fp32" and settings["trainer"] == {
        "dpo": "WeightedDPOTrainer" if extra else "DPOTrainer", "sft": "SFTTrainer"}[method]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["examples_seen"] == 12  # 3 steps x 2 per process x 2 processes

    model, _ = load_model_and_tokenizer(str(out))
    before, _ = load_model_and_tokenizer(tiny)
    assert params_hash(model) == ranks[0]["params"]  # the reload is exactly what both ranks trained
    assert params_hash(model) != params_hash(before)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--weight-column", "weight"]], ids=["dpo", "weighted-dpo"])
def test_two_cpu_processes_on_the_shipped_fsdp2_config_in_bf16(setup, extra, tmp_path):
    """fsdp.yaml for real (FSDP2 full shard, bf16 as on a GPU), with accelerate persuaded to shard on CPU.

    Before the fix: the per-token log-probs came back in bf16 (first-step rewards exactly 0, loss
    0.6914 = a bf16 number), every rank printed `saved`, and the checkpoint was fp32 with the tied
    head stored twice.
    """
    root, tiny, data, spy = setup
    out, spy_dir = tmp_path / "run", tmp_path / "spy"
    spy_dir.mkdir()
    done = launch("recipes/accelerate/fsdp.yaml", spy, "train_dpo.py", data, tiny, out, spy_dir, extra,
                  {"SPY_FSDP_ON_CPU": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((spy_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and {r["distributed_type"] for r in ranks} == {"FSDP"}
    assert ranks[0]["params"] == ranks[1]["params"]
    assert done.stdout.count("dpo: saved") == 1
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["engine"], settings["precision"], settings["num_processes"]) == ("fsdp2", "bf16", 2)

    def is_bf16_number(x):
        return torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).item() == x

    first, last = ranks[0]["logs"][0], ranks[0]["logs"][-1]
    assert first["rewards/margins"] != 0.0  # fp32 log-probs: policy (bf16 compute on fp32 masters) != reference
    assert not is_bf16_number(last["loss"]) and not is_bf16_number(last["rewards/margins"])
    assert last["rewards/accuracies"] == 1.0 and last["loss"] < first["loss"]

    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert "lm_head.weight" not in keys and {f.get_tensor(k).dtype for k in keys} == {torch.bfloat16}
    model, _ = load_model_and_tokenizer(str(out))
    assert params_hash(model, torch.bfloat16) == ranks[0]["params_bf16"]  # the fp32 masters, saved as bf16
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
