#!/usr/bin/env python3
"""Write the two model directories the GPU run serves with `--load-format dummy` (no weights).

    make_models.py OUT_DIR  ->  OUT_DIR/Qwen2.5-14B-Instruct, OUT_DIR/PaddleOCR-VL

- Qwen2.5-14B-Instruct: the model's real config.json (Qwen2ForCausalLM, 48 layers, hidden
  5120, 40 query / 8 KV heads of 128, vocab 152064, bf16).
- PaddleOCR-VL: vLLM 0.26 loads the real model only with its remote code, processor and
  tokenizer files, which cannot be fetched on the GPU machine (no network) and are not carried;
  so a Qwen2 config of its size stands in: the KV geometry of its text decoder (ERNIE-4.5-0.3B:
  18 layers, 2 KV heads of 128, so the same KV bytes per token) and about its parameter count
  (0.95 B, its vision encoder included), vocab 103424. No vision tower, so no image profiling.
- Tokenizers: byte-level BPE without merges whose vocabulary covers every id of the config
  (the 256 byte characters, filler tokens "t<id>", specials at the config's ids), so text
  encodes and any id the random weights sample decodes; a ChatML chat template. Written as
  plain JSON: this script needs only the standard library.
"""

import json
import os
import sys

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

QWEN25_14B = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 5120, "initializer_range": 0.02,
    "intermediate_size": 13824, "max_position_embeddings": 32768, "max_window_layers": 70,
    "model_type": "qwen2", "num_attention_heads": 40, "num_hidden_layers": 48, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": 152064,
}
QWEN_SPECIALS = {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>"}

PADDLEOCR_VL_SIZED = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "max_window_layers": 18, "model_type": "qwen2",
    "num_attention_heads": 8, "num_hidden_layers": 18, "num_key_value_heads": 2, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 103424,
}
OCR_SPECIALS = {0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>"}


def parameters(c):
    h, i, n, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    attn = h * h + 2 * h * kv + h * h + h + 2 * kv  # q, k, v, o; q/k/v biases (Qwen2)
    layer = attn + 3 * h * i + 2 * h
    return n * layer + v * h * (1 if c["tie_word_embeddings"] else 2) + h


def byte_alphabet():
    """GPT-2's byte-to-character table (the alphabet of byte-level BPE)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) \
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    chars, n = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + n))
            n += 1
    return chars


def tokenizer_json(vocab_size, specials):
    """Byte-level BPE without merges: the 256 byte characters, then filler tokens up to the
    config's vocabulary, so text encodes (one token a byte) and every id decodes. transformers
    5 rebuilds a Qwen2 config's tokenizer as byte-level BPE from vocab and merges, so the
    tokenizer must be of that kind."""
    ids = iter(i for i in range(vocab_size) if i not in specials)
    vocab = {c: next(ids) for c in byte_alphabet()}
    for i in ids:
        vocab["t%d" % i] = i
    vocab.update({tok: i for i, tok in specials.items()})
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, tok in sorted(specials.items())],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }


def write(out, config, specials, max_len):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(config["vocab_size"], specials), f, separators=(",", ":"))
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
                   "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": max_len,
                   "clean_up_tokenization_spaces": False, "chat_template": CHAT_TEMPLATE}, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"]}, f, indent=2)
    billions = parameters(config) / 1e9
    print("%s: %s, %.3f B parameters, vocab %d" % (out, config["architectures"][0], billions, config["vocab_size"]))


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    write(os.path.join(argv[0], "Qwen2.5-14B-Instruct"), QWEN25_14B, QWEN_SPECIALS, 32768)
    write(os.path.join(argv[0], "PaddleOCR-VL"), PADDLEOCR_VL_SIZED, OCR_SPECIALS, 131072)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
