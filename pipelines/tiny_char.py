"""`bundled:tiny-char`: a tiny character-level Llama the project builds itself, offline.

One token per character (printable ASCII and newline), plus single tokens for the R1 tags
`<think>`, `</think>`, `<answer>`, `</answer>` so that the format is cheap for a tiny model
to learn. The weights are random (seeded): the cold-start SFT stage teaches it. The result is
an ordinary Hugging Face directory that transformers and vLLM both load.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
R1_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
CHARS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # 95 printable + "\n"

# The assistant turn ends with </s>, which is the model's end-of-sequence token; a generation
# prompt ends right after <|assistant|>, so the model writes <think> itself (R1-Zero style).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<|user|>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class TinyCharSpec:
    """Architecture of the tiny model (about 0.1M parameters with the defaults)."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2  # head_dim 32: a size vLLM's CPU attention kernels support
    intermediate_size: int = 192
    max_position_embeddings: int = 512
    seed: int = 0


def build_tokenizer():
    """A WordLevel tokenizer over single characters, wrapped for transformers."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + R1_TAGS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # characters join with nothing between them
    core.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    core.add_tokens([AddedToken(t, normalized=False, special=False) for t in R1_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )


def build(path: str | Path, spec: TinyCharSpec = TinyCharSpec()) -> Path:
    """Write the tiny model (config, tokenizer, seeded random fp32 weights) to `path`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        head_dim=spec.hidden_size // spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    (path / "r1kit.json").write_text(json.dumps({"bundled": "tiny-char", "spec": spec.__dict__}))
    return path
