#!/usr/bin/env python3
"""Reference WordPiece ids for the BERT tokenizer test (Tests/ModelsTests/Fixtures/tokenizer).

Environment: python3 -m venv /work/venv-encoder &&
             /work/venv-encoder/bin/pip install -r Tools/requirements-tokenizer.txt
Run from the repository root (after `make setup`):
    /work/venv-encoder/bin/python Tools/make_tokenizer_fixtures.py
It loads the model's own tokenizer.json (BertNormalizer + BertPreTokenizer + WordPiece) with the
`tokenizers` package, turns its padding and truncation off, and writes one JSON object per line:
{"text": ..., "max_length": n or null, "ids": [...]}: the golden sentences published for the model,
hand-written hard cases, truncation cases, the first 300 BBC News headlines and 60 leads of
Datasets/bbc-news/train.jsonl in file order, and long texts (about 4,200 to 9,000 characters) that
the Swift tokenizer reads in windows of 4,096 characters: special tokens, punctuation and runs with
no white space fall on the window edges, in full and truncated.
"""
import json
import pathlib
import tokenizers

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / "Checkpoints/base/all-MiniLM-L6-v2"
OUT = ROOT / "Tests/ModelsTests/Fixtures/tokenizer/reference_ids.jsonl"

HARD = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "Café naïve façade — résumé, Zoë, Ångström, ŒUVRE, straße, İstanbul",
    "Wait...!!! What?!?! ((really)) --- $$$ ### @@@ ~~~ `quoted` \"double\" 'single'",
    "Prices rose 3.14% to $1,234,567.89 (£600m) on 2024-11-22 at 10:30am; 1st, 2nd, 3rd, 10,000x",
    "Emoji 😀🎉👍🏽 and flags 🇬🇧 plus hearts ❤️ and math ∑∫√∞ ≠ ≤",
    "日本語のテキストと中文文本，한국어 텍스트。漢字かな交じり文",
    "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 99 + " " + "b" * 100 + " " + "c" * 101,
    "x" * 150 + "y",
    "Control\u0000chars\u0007here\u001b[0m and\ttabs\nnewlines\r\nand\u00a0nbsp\u2003em\u200bzero\ufeffbom\ufffd",
    "Soft\u00adhyphen, ﬁ ligature, ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３, Ⅻ, ½, ²",
    "Greek ΟΔΥΣΣΕΥΣ and Cyrillic Москва, Arabic العربية, Hebrew עברית, Thai ภาษาไทย",
    "don't can't won't it's o'clock rock'n'roll e-mail co-operate U.S.A. Ph.D.",
    "<html><body class=\"x\">a&amp;b</body></html> http://example.com/a?b=c#d user@mail.org",
    "   leading and trailing spaces   ",
    "",
    "UNAFFABLE unaffable ##ing [CLS] [SEP] [UNK] [PAD]",
    "The quick brown fox jumps over the lazy dog. It was a sunny day and the children were playing in the park.",
]

TRUNCATED = [
    ("The quick brown fox jumps over the lazy dog. It was a sunny day and the children were playing in the park.", 8),
    ("Supercalifragilisticexpialidocious words everywhere", 5),
    ("short", 16),
]


def long_texts(leads):
    """Texts longer than one 4,096-scalar window of the Swift tokenizer, with hard content at the
    edges: the hard cases joined with and without spaces, leads joined by newlines, and runs with
    no white space or punctuation in which a special token falls on scalars 4,090 to 4,100."""
    texts = [" ".join(HARD * 6), "".join(HARD * 6), "\n".join(leads)[:9000]]
    for offset in (4090, 4094, 4096, 4099):
        texts.append("a" * offset + "[SEP]" + "bc" * 40 + " café" + "e\u0301" * 3 + "[CLS][CLS]" + "d" * 4200 + ". end")
    texts.append("w" * 4095 + "!!" + "x" * 50 + "\u00e9" * 20 + "\u3000" + "日本" * 10)
    return texts


def main():
    tok = tokenizers.Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    rows = []
    for text in HARD:
        rows.append({"text": text, "max_length": None, "ids": tok.encode(text).ids})
    for text, n in TRUNCATED:
        tok.enable_truncation(max_length=n)
        rows.append({"text": text, "max_length": n, "ids": tok.encode(text).ids})
        tok.no_truncation()
    examples = [json.loads(line) for line in (ROOT / "Datasets/bbc-news/train.jsonl").open()]
    for ex in examples[:300]:
        rows.append({"text": ex["text"], "max_length": None, "ids": tok.encode(ex["text"]).ids})
    for ex in examples[:60]:
        rows.append({"text": ex["lead"], "max_length": None, "ids": tok.encode(ex["lead"]).ids})
    leads = [ex["lead"] for ex in examples[:200]]
    for text in long_texts(leads):
        rows.append({"text": text, "max_length": None, "ids": tok.encode(text).ids})
        for n in (128, 1500) if len(rows[-1]["ids"]) > 1500 else ():
            tok.enable_truncation(max_length=n)
            rows.append({"text": text, "max_length": n, "ids": tok.encode(text).ids})
            tok.no_truncation()
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {OUT} with tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
