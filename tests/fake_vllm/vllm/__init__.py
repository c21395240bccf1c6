"""A stand-in for `vllm` (tests only, CPU): records every engine and request it gets, and answers
with greedy transformers generation one prompt at a time, so a test can hold the vLLM backend's
records against the transformers backend's.

Put `tests/fake_vllm` first on sys.path (spawned worker processes inherit it). Each event is one
JSON line appended to the file named by ZEBRA_FAKE_VLLM_LOG, so engines built in worker processes
are counted too. A `model` folder without config.json answers by echoing the prompt's ids
backwards (no torch needed: the data-parallel tests start processes quickly).
"""

import json
import os
from dataclasses import dataclass, field

LOG_ENV = "ZEBRA_FAKE_VLLM_LOG"


def _log(event: dict) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**event, "pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@dataclass
class CompletionOutput:
    token_ids: list
    text: str = ""


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


class LLM:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self._models = {}
        _log({"event": "LLM", "kwargs": kwargs})

    def _model(self, lora_path):
        if lora_path not in self._models:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(self.kwargs["model"])
            if lora_path:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, lora_path).merge_and_unload()
            self._models[lora_path] = model.eval()
        return self._models[lora_path]

    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        params = sampling_params.kwargs
        lora = None if lora_request is None else [lora_request.lora_name, lora_request.lora_int_id, lora_request.lora_path]
        _log({"event": "generate", "prompts": prompts, "params": params, "lora": lora})
        if not os.path.isfile(os.path.join(self.kwargs["model"], "config.json")):
            return [RequestOutput(p["prompt_token_ids"], [CompletionOutput(p["prompt_token_ids"][::-1][: params["max_tokens"]])])
                    for p in prompts]
        import torch

        model = self._model(lora[2] if lora else None)
        assert params["temperature"] == 0.0 and params["repetition_penalty"] == 1.0
        outs = []
        for p in prompts:
            ids = torch.tensor([p["prompt_token_ids"]])
            with torch.inference_mode():
                seq = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=params["max_tokens"], eos_token_id=params["stop_token_ids"],
                                     pad_token_id=params["stop_token_ids"][0], temperature=None, top_p=None, top_k=None,
                                     repetition_penalty=1.0)[0, ids.shape[1]:].tolist()
            stop = next((k for k, t in enumerate(seq) if t in params["stop_token_ids"]), None)
            outs.append(RequestOutput(p["prompt_token_ids"], [CompletionOutput(seq if stop is None else seq[: stop + 1])]))
        return outs
