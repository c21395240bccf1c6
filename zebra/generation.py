"""Greedy generation for evaluation: transformers (batched, left padding) or one vLLM engine per run.

Both backends see the same input and follow the same decoding rule, so a benchmark scores the same
whichever ran it:
- **Input**: each prompt's token ids from our tokenizer (`prompt_token_ids`: the chat text encoded
  with no special tokens added, since the template already holds them). transformers gets them
  left-padded in batches; vLLM gets them as `{"prompt_token_ids": [...]}` and never sees text.
- **Decoding**: greedy (temperature 0), no repetition penalty, at most `max_new_tokens`, stopping at
  the same token ids (`stop_token_ids`: the generation config's end-of-sequence ids plus the
  tokenizer's). A checkpoint's own sampling defaults (Qwen2.5's `repetition_penalty` 1.05,
  `top_p`, `temperature`) are overridden on both backends: the paper's protocol is greedy.
- **Output**: the new token ids, decoded by our tokenizer with special tokens skipped, stripped.

vLLM (`VllmEngine`) builds its engine once per run and serves every benchmark from it: a LoRA
adapter folder through vLLM's LoRA support (`enable_lora` + one `LoRARequest`, the base model
named in `adapter_config.json`), a GGUF file through the same dequantised HF folder the
transformers backend loads, `tensor_parallel_size` GPUs per engine, and `data_parallel_size`
engines in worker processes, each on its own GPUs, each given a contiguous share of the prompts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from zebra.errors import ZebraError
from zebra.jsonio import read_json

log = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "vllm")
DTYPES = ("auto", "bfloat16", "float16", "float32")
# vLLM's LoRA kernels are built for these ranks; --max-lora-rank must be one of them (vllm/config)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# The name under which the adapter is served; one adapter per run, so its id is always 1.
LORA_NAME = "zebra-adapter"


# ----------------------------------------------------------------------------- shared by both backends


def prompt_token_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """The token ids of chat-formatted `texts`: the chat template already holds BOS and role
    tokens, so none are added a second time."""
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def stop_token_ids(generation_config, tokenizer) -> list[int]:
    """End-of-sequence ids both backends stop at: the generation config's (an int or a list, e.g.
    Llama 3's three) and the tokenizer's own, which vLLM always stops at."""
    found = getattr(generation_config, "eos_token_id", None) if generation_config is not None else None
    ids = set(found if isinstance(found, (list, tuple)) else [found] if found is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(int(i) for i in ids)


def generation_config(model_path: str):
    """The generation config transformers would give a model loaded from `model_path` (its
    generation_config.json, else one derived from its config.json)."""
    from transformers import AutoConfig, GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path)
    except OSError:
        return GenerationConfig.from_model_config(AutoConfig.from_pretrained(model_path))


def decode_replies(tokenizer, outputs: Sequence[Sequence[int]]) -> list[str]:
    """New token ids → reply texts, special tokens dropped (the same rule on both backends)."""
    return [tokenizer.decode(list(ids), skip_special_tokens=True).strip() for ids in outputs]


def generate_transformers(
    model,
    tokenizer,
    texts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    progress: Callable | None = None,
) -> list[str]:
    """Greedy continuations of chat-formatted `texts`, batched with left padding.

    Texts are batched longest first (less padding, and an out-of-memory error shows up at once);
    outputs come back in input order.
    """
    import torch

    tokenizer.padding_side = "left"  # decoder-only: the reply must start right after the prompt
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    outputs: list[list[int]] = [[] for _ in texts]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    device = next(model.parameters()).device
    gen_kwargs = dict(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_token_ids(model.generation_config, tokenizer),
        # instruct checkpoints ship sampling defaults (and Qwen2.5 a repetition penalty): greedy
        # decoding ignores the first, and the second is switched off, as vLLM's request does
        temperature=None,
        top_p=None,
        top_k=None,
        repetition_penalty=1.0,
    )
    iterator = progress(batches) if progress else batches
    model.eval()
    for batch in iterator:
        # the ids prompt_token_ids gives (what vLLM receives), left-padded
        enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(**enc, **gen_kwargs)
        for i, seq in zip(batch, out[:, enc["input_ids"].shape[1] :].tolist()):
            outputs[i] = _until_stop(seq, gen_kwargs["eos_token_id"], tokenizer.pad_token_id)
    return decode_replies(tokenizer, outputs)


def _until_stop(seq: list[int], stop_ids: list[int], pad_id: int | None) -> list[int]:
    """A padded generated row cut after its first stop token (vLLM returns it so, stop included)."""
    for k, token in enumerate(seq):
        if token in stop_ids:
            return seq[: k + 1]
    return seq


# ----------------------------------------------------------------------------- vLLM


def vllm_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def choose_backend(requested: str, model: str, gguf_file: str | None) -> str:
    """`auto` → vLLM on a CUDA box that has it, transformers otherwise. Every kind of `--model`
    (hub id, folder, LoRA adapter folder, GGUF file) runs on both."""
    if requested not in BACKENDS:
        raise ZebraError(f"--backend must be auto, transformers or vllm, got {requested!r}")
    if requested == "vllm":
        if not vllm_available():
            raise ZebraError("--backend vllm: vllm is not installed or no CUDA device; use --backend transformers")
        return "vllm"
    if requested == "auto" and vllm_available():
        return "vllm"
    return "transformers"


@dataclass(frozen=True)
class VllmSpec:
    """Everything one engine is built from (picklable: data-parallel workers rebuild it)."""

    model: str  # an HF folder or hub id (a GGUF file's dequantised folder, a LoRA adapter's base)
    tokenizer: str  # where vLLM loads its tokenizer (only for its own bookkeeping: we decode)
    lora: str | None = None  # adapter folder, served with LoRARequest
    max_lora_rank: int | None = None
    dtype: str = "auto"
    seed: int = 0
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1


def vllm_spec(model: str, gguf_file: str | None, dtype: str, seed: int, tensor_parallel_size: int = 1,
              data_parallel_size: int = 1) -> VllmSpec:
    """The engine for `--model`: a LoRA adapter folder is served on its base model (from
    `adapter_config.json`) with `max_lora_rank` the smallest vLLM rank ≥ the adapter's `r`; a GGUF
    file is served from its dequantised HF folder (zebra.models.resolve_model_path)."""
    from zebra.models import is_adapter_folder, resolve_model_path

    if not gguf_file and is_adapter_folder(model):
        config_path = Path(model) / "adapter_config.json"
        config = read_json(config_path, "adapter config")
        base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        if not base:
            raise ZebraError(f"{config_path} names no base_model_name_or_path; cannot serve the adapter")
        rank = config.get("r")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ZebraError(f"{config_path}: `r` {rank!r} is not a LoRA rank")
        fitting = [r for r in VLLM_LORA_RANKS if r >= rank]
        if not fitting:
            raise ZebraError(f"{config_path}: rank {rank} is above vLLM's largest ({VLLM_LORA_RANKS[-1]}); "
                             "use --backend transformers")
        tokenizer = model if (Path(model) / "tokenizer_config.json").is_file() else str(base)
        return VllmSpec(str(base), tokenizer, lora=str(model), max_lora_rank=fitting[0], dtype=dtype, seed=seed,
                        tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size)
    path = resolve_model_path(model, gguf_file)
    return VllmSpec(str(path), str(path), dtype=dtype, seed=seed, tensor_parallel_size=tensor_parallel_size,
                    data_parallel_size=data_parallel_size)


def engine_kwargs(spec: VllmSpec) -> dict:
    """`vllm.LLM(**engine_kwargs(spec))` for one engine (data parallelism is ours, not vLLM's)."""
    kwargs = dict(model=spec.model, tokenizer=spec.tokenizer, dtype=spec.dtype, seed=spec.seed,
                  tensor_parallel_size=spec.tensor_parallel_size)
    if spec.lora:
        kwargs.update(enable_lora=True, max_lora_rank=spec.max_lora_rank, max_loras=1)
    return kwargs


def requests(token_ids: Sequence[Sequence[int]]) -> list[dict]:
    """vLLM prompts made of token ids (its TokensPrompt), so vLLM never tokenizes text itself."""
    return [{"prompt_token_ids": list(ids)} for ids in token_ids]


def sampling_kwargs(max_new_tokens: int, stop_ids: Sequence[int]) -> dict:
    """`vllm.SamplingParams(**sampling_kwargs(...))`: greedy, as generate_transformers decodes."""
    return dict(n=1, temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=list(stop_ids),
                repetition_penalty=1.0, skip_special_tokens=True)


class VllmEngine:
    """One vLLM engine (`data_parallel_size` 1) in this process, built once, reused for every call."""

    def __init__(self, spec: VllmSpec):
        from vllm import LLM

        self.spec = spec
        self.llm = LLM(**engine_kwargs(spec))
        self.lora_request = None
        if spec.lora:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest(LORA_NAME, 1, spec.lora)

    def generate_ids(self, token_ids: Sequence[Sequence[int]], max_new_tokens: int,
                     stop_ids: Sequence[int]) -> list[list[int]]:
        from vllm import SamplingParams

        if not token_ids:
            return []
        outs = self.llm.generate(requests(token_ids), SamplingParams(**sampling_kwargs(max_new_tokens, stop_ids)),
                                 lora_request=self.lora_request)
        return [list(o.outputs[0].token_ids) for o in outs]

    def close(self) -> None:
        self.llm = None


def visible_devices() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every device torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def device_groups(tensor_parallel_size: int, data_parallel_size: int, devices: Sequence[str]) -> list[list[str]]:
    """Engine k gets devices [k·tp, (k+1)·tp): refused when there are fewer than tp·dp."""
    need = tensor_parallel_size * data_parallel_size
    if need > len(devices):
        raise ZebraError(f"--tensor-parallel-size {tensor_parallel_size} × --data-parallel-size {data_parallel_size} "
                         f"needs {need} GPUs; {len(devices)} visible ({','.join(devices) or 'none'})")
    return [list(devices[k * tensor_parallel_size:(k + 1) * tensor_parallel_size]) for k in range(data_parallel_size)]


def shards(n: int, parts: int) -> list[range]:
    """`parts` contiguous index ranges covering 0..n, sizes differing by at most one."""
    size, extra = divmod(n, parts)
    bounds = [0]
    for k in range(parts):
        bounds.append(bounds[-1] + size + (1 if k < extra else 0))
    return [range(bounds[k], bounds[k + 1]) for k in range(parts)]


def _engine_worker(spec: dict, devices: list[str], inbox, outbox) -> None:
    """A data-parallel worker: its own GPUs, one engine built once, then jobs until None."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    try:
        engine = VllmEngine(VllmSpec(**{**spec, "data_parallel_size": 1}))
    except BaseException as err:  # noqa: BLE001 (reported to the parent, which stops the run)
        outbox.put(("error", f"{type(err).__name__}: {err}"))
        return
    outbox.put(("ready", None))
    while (job := inbox.get()) is not None:
        try:
            outbox.put(("ok", engine.generate_ids(*job)))
        except BaseException as err:  # noqa: BLE001
            outbox.put(("error", f"{type(err).__name__}: {err}"))


class DataParallelVllm:
    """`data_parallel_size` engines in spawned worker processes, each on its own GPUs (tensor
    parallel inside), each built once; a call splits the prompts into contiguous shards, one per
    engine, and puts the replies back in input order."""

    def __init__(self, spec: VllmSpec, devices: Sequence[str] | None = None):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # CUDA cannot be initialised in a forked child
        groups = device_groups(spec.tensor_parallel_size, spec.data_parallel_size,
                               visible_devices() if devices is None else devices)
        self.workers = []
        for group in groups:
            inbox, outbox = ctx.Queue(), ctx.Queue()
            proc = ctx.Process(target=_engine_worker, args=(asdict(spec), group, inbox, outbox), daemon=True)
            proc.start()
            self.workers.append((proc, inbox, outbox))
        for k, (_, _, outbox) in enumerate(self.workers):
            self._receive(k, outbox, "start")

    def _receive(self, k: int, outbox, what: str):
        kind, value = outbox.get()
        if kind == "error":
            self.close()
            raise ZebraError(f"vLLM engine {k} (data-parallel worker) failed to {what}: {value}")
        return value

    def generate_ids(self, token_ids: Sequence[Sequence[int]], max_new_tokens: int,
                     stop_ids: Sequence[int]) -> list[list[int]]:
        parts = shards(len(token_ids), len(self.workers))
        for (_, inbox, _), part in zip(self.workers, parts):
            inbox.put(([list(token_ids[i]) for i in part], max_new_tokens, list(stop_ids)))
        out: list[list[int]] = []
        for k, (_, _, outbox) in enumerate(self.workers):
            out += self._receive(k, outbox, "generate")
        return out

    def close(self) -> None:
        for proc, inbox, _ in self.workers:
            if proc.is_alive():
                inbox.put(None)
        for proc, _, _ in self.workers:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
        self.workers = []


def start_vllm(spec: VllmSpec):
    """The run's engine(s): one in this process, or data-parallel workers."""
    if spec.data_parallel_size > 1:
        return DataParallelVllm(spec)
    return VllmEngine(replace(spec, data_parallel_size=1))


def generate_vllm(engine, tokenizer, texts: Sequence[str], max_new_tokens: int, stop_ids: Sequence[int]) -> list[str]:
    """Greedy replies to chat-formatted `texts` from an engine `start_vllm` built."""
    return decode_replies(tokenizer, engine.generate_ids(prompt_token_ids(tokenizer, texts), max_new_tokens, stop_ids))
