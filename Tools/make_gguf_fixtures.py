#!/usr/bin/env python3
"""Reference values for Lethe's GGUF reader and byte-level BPE tokenizer (ModelsTests).

Environment (outside the repo):
    python3 -m venv /work/venv-decoder && /work/venv-decoder/bin/pip install -r Tools/requirements-gguf.txt
Run from the repository root (after `make setup`):
    /work/venv-decoder/bin/python Tools/make_gguf_fixtures.py
Writes Tests/ModelsTests/Fixtures/gguf/smollm2_reference.json:
  - metadata values and the tensor table summary read by the `gguf` package (its own parser);
  - dequantised slices of a Q8_0, a Q4_1 and an F32 tensor (gguf.quants.dequantize);
  - token ids of hard strings from a `tokenizers` BPE built from the GGUF vocab and merges with
    the `smollm` pre-tokenizer (Digits(individual) then ByteLevel with the GPT-2 regex), which is
    how SmolLM2's own tokenizer.json is configured; special tokens are the control tokens.
"""
import json
import gguf
import numpy as np
from gguf import quants
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, AddedToken

PATH = "Checkpoints/base/SmolLM2-135M-Instruct/model.gguf"
OUT = "Tests/ModelsTests/Fixtures/gguf/smollm2_reference.json"

r = gguf.GGUFReader(PATH)
f = lambda k: r.fields[k].contents()

def tensor(name):
    t = next(t for t in r.tensors if t.name == name)
    return t, quants.dequantize(t.data, t.tensor_type).reshape(-1)

slices = []
for name, start, count in [("token_embd.weight", 0, 64), ("token_embd.weight", 576 * 504 + 100, 40),
                           ("blk.0.attn_q.weight", 0, 64), ("blk.29.ffn_down.weight", 1536 * 575 + 1000, 64),
                           ("blk.3.attn_norm.weight", 0, 16), ("output_norm.weight", 560, 16)]:
    t, values = tensor(name)
    slices.append({"tensor": name, "ggml_type": int(t.tensor_type), "dims": [int(d) for d in t.shape],
                   "start": start, "values": [float(v) for v in values[start:start + count]]})

tokens = f("tokenizer.ggml.tokens")
merges = f("tokenizer.ggml.merges")
types = f("tokenizer.ggml.token_type")
vocab = {tok: i for i, tok in enumerate(tokens)}
bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges])
tk = Tokenizer(bpe)
tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
tk.decoder = decoders.ByteLevel()
specials = [tokens[i] for i, ty in enumerate(types) if ty == 3]
tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])

cases = [
    "The capital of France is",
    "Once upon a time, there was a little",
    "The quick brown fox jumps over the lazy dog. It was a sunny day and the children were playing in the park.",
    "Numbers: 1234567 and 3.14159, year 2024; 12abc34",
    "  leading spaces,\ttabs\t\tand   runs of    spaces   ",
    "line one\nline two\n\n\nthree newlines\r\nwindows  \n  indented",
    "I'm sure you'll see they've done it, we'd say it's HE'S DON'T",
    "naïve café résumé Zürich — “quotes” ‘single’ … ½ ² ③",
    "日本語のテキストと中文文本, 한국어 텍스트",
    "Emoji: 👍🏽 🤖🚀 and family 👨‍👩‍👧 flags 🇫🇷",
    "def f(x):\n    return x**2 + 1  # square\n\nif __name__ == '__main__':\n\tprint(f(3))",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "Ελληνικά και русский текст, עברית, العربية",
    "$1.13bn (£600m) 76% ~~~ ### !!! ??? ...",
    "a\u00a0b\u2003c\u200bd",
    "",
    " ",
    "\n\n",
]
tok_cases = []
for text in cases:
    enc = tk.encode(text, add_special_tokens=False)
    tok_cases.append({"text": text, "ids": enc.ids, "decoded": tk.decode(enc.ids, skip_special_tokens=False)})

out = {
    "generator": "Tools/make_gguf_fixtures.py (gguf 0.17.1, tokenizers 0.22.1)",
    "file": PATH,
    "version": int(f("GGUF.version")),
    "tensor_count": len(r.tensors),
    "metadata_count": int(f("GGUF.kv_count")),
    "metadata": {k: f(k) for k in ["general.architecture", "llama.block_count", "llama.embedding_length",
                                   "llama.feed_forward_length", "llama.attention.head_count",
                                   "llama.attention.head_count_kv", "llama.rope.freq_base",
                                   "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model",
                                   "tokenizer.ggml.pre", "tokenizer.ggml.eos_token_id", "general.languages"]},
    "token_count": len(tokens), "merge_count": len(merges),
    "first_merges": merges[:5], "token_100": tokens[100], "special_tokens": specials,
    "type_counts": {str(ty): int(np.sum(np.array([x.tensor_type for x in r.tensors]) == ty)) for ty in (0, 3, 8)},
    "slices": slices,
    "tokenizer_cases": tok_cases,
}
with open(OUT, "w") as fh:
    json.dump(out, fh, ensure_ascii=False, indent=1)
print("wrote", OUT, len(tok_cases), "tokenizer cases;", len(specials), "special tokens")
