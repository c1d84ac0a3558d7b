#!/usr/bin/env python3
"""Convert the fetched corpora into Lethe's JSON Lines format (Datasets/README.md).

Usage: python3 Datasets/convert.py bbc-news SRC_DIR OUT_DIR
       python3 Datasets/convert.py rotten-tomatoes CSV_BZ2 OUT_DIR

Each output line: {"id", "text", "label"[, "group"][, "lead"]}. The split is
fixed and stratified: within each class, in id order, every fifth example
(positions 4, 9, 14, ...) goes to test, the rest to train (80/20). Only the
standard library is used, so setup needs nothing installed.

Bad input stops the conversion with a message naming the file (and the CSV row) and nothing
written: an article that is empty, two folders giving the same ids, a CSV that is
not bzip2 or not UTF-8, a missing column, a row with an empty text or movie name.
"""
import bz2
import csv
import io
import json
import os
import sys


def fail(where, what):
    """Stop with a message naming the input; no output file has been replaced yet."""
    sys.exit(f"convert.py: {where}: {what}")


def write_split(rows, out_dir):
    """Write train.jsonl and test.jsonl with a per-label 80/20 split."""
    os.makedirs(out_dir, exist_ok=True)
    by_label = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    train, test = [], []
    for label in sorted(by_label):
        for i, row in enumerate(sorted(by_label[label], key=lambda r: r["id"])):
            (test if i % 5 == 4 else train).append(row)
    for name, part in (("train", train), ("test", test)):
        tmp = os.path.join(out_dir, name + ".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for row in sorted(part, key=lambda r: r["id"]):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, os.path.join(out_dir, name + ".jsonl"))
    print(f"{out_dir}: {len(train)} train, {len(test)} test, labels {sorted(by_label)}")


def bbc_news(src_dir, out_dir):
    """src_dir holds one folder per class with NNN.txt articles: headline, blank, body."""
    rows = []
    for label in sorted(os.listdir(src_dir)):
        folder = os.path.join(src_dir, label)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".txt"):
                continue
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                data = f.read()
            # The corpus holds bytes that are not UTF-8 (sports/199.txt): replaced with U+FFFD,
            # as the published conversion (whose hashes setup checks) does.
            raw = data.decode("utf-8", errors="replace")
            lines = [line.strip() for line in raw.splitlines()]
            paragraphs = [line for line in lines if line]
            if not paragraphs:
                fail(path, "the article is empty (a headline is needed); re-fetch the corpus")
            headline = paragraphs[0]
            lead = paragraphs[1] if len(paragraphs) > 1 else ""
            body = "\n\n".join(paragraphs[1:])
            label_name = "sport" if label == "sports" else label
            rows.append({"id": f"{label_name}/{name[:-4]}", "text": headline,
                         "label": label_name, "lead": lead, "body": body, "_path": path})
    seen = {}
    for row in rows:
        if row["id"] in seen:
            fail(row.pop("_path"), f'gives the id {row["id"]} that {seen[row["id"]]} gives too '
                 "(folders 'sport' and 'sports' are one label); keep one of them")
        seen[row["id"]] = row.pop("_path")
    write_split(rows, out_dir)


def rotten_tomatoes(csv_bz2, out_dir):
    """Fresh/rotten review snippets; group = movie; id = row number in the source CSV."""
    with open(csv_bz2, "rb") as f:
        packed = f.read()
    try:
        text = bz2.decompress(packed).decode("utf-8")
    except (OSError, ValueError, EOFError) as error:
        fail(csv_bz2, f"not a bzip2 file of UTF-8 text ({error}); re-fetch the corpus")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("category", "text", "movie_name") if c not in (reader.fieldnames or [])]
    if missing:
        fail(csv_bz2, f"no column {', '.join(missing)} in the header {reader.fieldnames}")
    rows = []
    for i, rec in enumerate(reader):
        # Row i of the data (0-based), line i + 2 of the CSV when no field spans lines.
        where = f"{csv_bz2}: row {i}"
        if any(rec.get(c) is None for c in ("category", "text", "movie_name")):
            fail(where, "has fewer fields than the header")
        if rec["category"] not in ("fresh", "rotten"):
            continue
        if not rec["text"].strip():
            fail(where, "the review text is empty; drop the row from the CSV")
        if not rec["movie_name"].strip():
            fail(where, "the movie name (the example's group) is empty; give one or drop the row")
        rows.append({"id": f"rt/{i:05d}", "text": rec["text"].strip(),
                     "label": rec["category"], "group": rec["movie_name"]})
    write_split(rows, out_dir)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("bbc-news", "rotten-tomatoes"):
        sys.exit(__doc__)
    {"bbc-news": bbc_news, "rotten-tomatoes": rotten_tomatoes}[sys.argv[1]](sys.argv[2], sys.argv[3])
