"""A tiny random Llama-style model and a tokenizer trained on the fly, saved as an HF folder.

Tests across the project (training, evaluation) import this instead of reaching the hub:

    from tests.tiny import make_tiny_model_dir
    folder = make_tiny_model_dir(tmp_path / "tiny")   # -> the folder, loadable by from_pretrained

The tokenizer is a byte-level BPE with a small vocabulary learned from a built-in corpus plus any
texts passed in, so every string encodes (byte fallback) and ids stay below the model's vocab.
It carries a ChatML-style chat template so trl's conversational formats work unchanged.
"""

from __future__ import annotations

from pathlib import Path

# ChatML-like, with `{% generation %}` markers so trl's assistant_only_loss also works.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "Explain photosynthesis. Plants turn light, water and carbon dioxide into sugar and oxygen.",
    "Write a haiku about the sea. Waves fold into foam, the tide keeps its patient time.",
    "Q: 2 + 2 Options: (A) 3 (B) 4 (C) 5 Output: The answer is (B).",
    "Good answer helpful correct clear. Bad answer wrong rude unclear.",
    "user assistant system the a an of to in is and or not yes no",
    "0 1 2 3 4 5 6 7 8 9 A B C D E F G H I J",
]


def make_tiny_tokenizer(texts: list[str] | None = None, vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on a small corpus and wrap it as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        # the full byte alphabet keeps every input encodable, whatever the corpus
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_CORPUS) + list(texts or []), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def make_tiny_model_dir(
    path: str | Path,
    texts: list[str] | None = None,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Save a random Llama-style causal LM (a few 10k parameters) and a tiny tokenizer to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def preference_record(i, chosen="Good answer yes.", rejected="Bad answer no.", **extra) -> dict:
    """A binarize-output record (prompt once, two-message chosen/rejected), as the train scripts read."""
    prompt = f"Question {i}?"
    return {
        "prompt": prompt, "prompt_id": str(i),
        "chosen": [{"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}],
        "rejected": [{"role": "user", "content": prompt}, {"role": "assistant", "content": rejected}],
        **extra,
    }
