#!/usr/bin/env python3
"""`lethe bench train` in PyTorch + PEFT: LoRA classifier training on the same configuration,
optionally side by side with ours.

Environment (outside the repository; a comparison tool, never a test dependency):
    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tools/requirements-torch.txt
Run from anywhere (paths are relative to the repository root):
    /work/venv-torch/bin/python Tools/compare_train_torch.py --threads 2
    /work/venv-torch/bin/python Tools/compare_train_torch.py --threads 2 --lethe .build/release/lethe
    /work/venv-torch/bin/python Tools/compare_train_torch.py --epochs 1 --train-limit 300 --json
    /work/venv-torch/bin/python Tools/compare_train_torch.py --precision bf16 --lethe .build/release/lethe

Configuration (the defaults of Sources/lethe/BenchTrain.swift): all-MiniLM-L6-v2, BBC News
headlines (text field `text`), max length 128, LoRA r 16, alpha 32, dropout 0 on query and value,
placements `all` (every layer) and `top` (layer 5 only, PEFT layers_to_transform=[5]), a linear
head on the raw mean-pooled output (`--normalized-head`: on the L2-normalised one), 3 epochs,
batch 32, AdamW lr 1e-3 (0.9, 0.999, 1e-8, weight decay 0.01), 6 % warmup then linear decay,
gradient clipping at 1, seed 0. Initial values and batches are ours bit for bit (see
Tools/torch_mirror.py), so per-epoch losses should agree to float noise; the difference in
work is our activation cache (PyTorch recomputes the frozen layers below the adapters).

Timing: the training loop only (tokenization and model loading excluded, as in ours); examples/s
= examples seen / seconds; real tokens/s counts non-padding tokens. With --lethe PATH, ours runs
first (`PATH bench train` with the same options, in the repository root, OPENBLAS_CORETYPE
removed), then PyTorch; the table gives ours/PyTorch examples/s and the load averages.
With --precision bf16 ours trains in bfloat16 (`lethe bench train --precision bf16`) and PyTorch
runs twice, in float32 and under torch.autocast("cpu", dtype=torch.bfloat16), so one run gives
both ratios; shares of the peak are then of the bf16 peak.
"""
import argparse
import json
import os
import re
import sys
import tempfile
import time

import torch_mirror as tm


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="Checkpoints/base/all-MiniLM-L6-v2")
    p.add_argument("--data", default="Datasets/bbc-news/train.jsonl")
    p.add_argument("--test", default="Datasets/bbc-news/test.jsonl")
    p.add_argument("--text-field", default="text", choices=["text", "text+lead"])
    p.add_argument("--placements", nargs="+", default=["all", "top"], choices=["all", "top"],
                   help="all (every layer), top (last layer)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--targets", nargs="+", default=["q", "v"], help="q k v o up down")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--normalized-head", action="store_true", help="head on the L2-normalised mean")
    p.add_argument("--train-limit", type=int, default=0,
                   help="train on N examples spread evenly over the file (quick runs; 0 = all)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="ours: `lethe bench train --precision`; with bf16 PyTorch also runs under bf16 autocast")
    p.add_argument("--lethe", help="also run PATH bench train with the same settings, first")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    for name in ("epochs", "rank", "batch_size", "threads", "max_length"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def subset_file(path, limit, directory):
    """`limit` lines of `path` spread evenly over it (line ⌊i·n/limit⌋), so a quick run keeps every class."""
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    picked = sorted({i * len(lines) // limit for i in range(min(limit, len(lines)))})
    out = os.path.join(directory, "train-subset.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines[i] for i in picked)
    return out


def run_torch(args, train_path, test_path, precision="fp32"):
    import torch
    torch.set_num_threads(args.threads)
    model_dir = tm.resolve(args.model)
    targets = tm.parse_targets(" ".join(args.targets))
    train_set, test_set = tm.read_jsonl(train_path), tm.read_jsonl(test_path)
    labels = sorted({e["label"] for e in train_set}, key=lambda s: s.encode())
    index = {name: k for k, name in enumerate(labels)}
    for e in test_set:
        if e["label"] not in index:
            raise SystemExit(f"{test_path}: example {e['id']} has label {e['label']}, unknown to the training data")
    tokens = tm.Tokens(model_dir, args.max_length)
    train_ids = tokens.encode([tm.model_input(e, args.text_field) for e in train_set])
    test_ids = tokens.encode([tm.model_input(e, args.text_field) for e in test_set])
    train_labels = [index[e["label"]] for e in train_set]
    truth = [index[e["label"]] for e in test_set]
    base = tm.load_encoder(model_dir)
    layer_count = base.config.num_hidden_layers
    results = []
    for placement in args.placements:
        layers = list(range(layer_count)) if placement == "all" else [layer_count - 1]
        torch.manual_seed(args.seed)
        encoder = tm.lora_model(base, layers, targets, args.rank, args.alpha)
        classifier = tm.Classifier(encoder, len(labels), base.config.hidden_size, args.normalized_head,
                                   tm.derive(args.seed, -1))
        classifier.init_adapters({l: tm.derive(args.seed, l) for l in layers})
        params = tm.trainable_parameters(classifier, set(layers))
        work = tm.Work(base.config.hidden_size, base.config.intermediate_size, layer_count, targets, args.rank)
        start = time.monotonic()
        report = tm.train(classifier, params, train_ids, train_labels, args.epochs, args.batch_size, args.lr,
                          args.seed, work=work, lowest_trained=min(layers), precision=precision)
        seconds = time.monotonic() - start
        predicted = classifier.logits(test_ids, precision=precision).argmax(dim=1).tolist()
        accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
        results.append({
            "placement": placement, "layers": layers, "seconds": seconds,
            "examples_per_second": report["examples"] / seconds,
            "real_tokens_per_second": report["real_tokens"] / seconds,
            "padding_percent": 100 * (1 - report["real_tokens"] / report["padded_tokens"]),
            "test_accuracy": accuracy, "epoch_losses": report["epoch_losses"], "steps": report["steps"],
            "examples": report["examples"], "threads": torch.get_num_threads(), "cpu_seconds": report["cpu_seconds"],
            "flops_done": work.done, "flops_floor": work.floor_total(), "flops_adapters": work.adapters,
            "precision": precision})
    return results


BENCH_HEAD = re.compile(r"^(\w+) \(layers ([\d,]+),")
BENCH_LINE = re.compile(r"^\s+([\d.]+) s, ([\d.]+) examples/s, ([\d.]+) real tokens/s, padding ([\d.]+)%, "
                        r"test accuracy ([\d.]+)%, loss (\S+)")


def run_ours(args, train_path, test_path):
    command = [os.path.abspath(args.lethe), "bench", "train", "--model", tm.resolve(args.model), "--data", train_path,
               "--test-data", test_path, "--text-field", args.text_field, "--placements", *args.placements,
               "--epochs", str(args.epochs), "--rank", str(args.rank), "--alpha", str(args.alpha),
               "--targets", *args.targets, "--lr", str(args.lr), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed), "--threads", str(args.threads), "--max-tokens", str(args.max_length),
               "--precision", args.precision]
    if args.normalized_head:
        command.append("--normalized-head")
    out, _, cpu = tm.run_lethe(command, tm.repo_root())
    results, current = [], None
    for line in out.splitlines():
        head = BENCH_HEAD.match(line)
        if head:
            current = {"placement": head.group(1), "layers": [int(x) for x in head.group(2).split(",")]}
            continue
        body = BENCH_LINE.match(line)
        if body and current is not None:
            current.update(seconds=float(body.group(1)), examples_per_second=float(body.group(2)),
                           real_tokens_per_second=float(body.group(3)), padding_percent=float(body.group(4)),
                           test_accuracy=float(body.group(5)) / 100,
                           epoch_losses=[float(x) for x in body.group(6).split("→")], threads=args.threads)
            results.append(current)
            current = None
        elif line.strip().startswith("activation cache:") and results:
            results[-1]["cache"] = line.strip()
    if len(results) != len(args.placements):
        raise SystemExit("could not read the output of `lethe bench train` (expected one result per placement):\n" + out)
    results[-1]["process_cpu_seconds"] = cpu
    return results, " ".join(command)


def describe(args):
    return (f"targets {args.targets}, r={args.rank}, alpha={args.alpha:g}, {args.epochs} epochs, batch "
            f"{args.batch_size}, lr {args.lr:g}, text field {args.text_field}, max length {args.max_length}, "
            f"{'normalised' if args.normalized_head else 'raw'} mean into the head, seed {args.seed}, "
            f"{args.threads} threads, ours in {args.precision}")


def torch_runs(result):
    """(name, key) of each PyTorch run in `result`: float32, and bf16 autocast when it ran. The
    run's results are result[key] and ours ÷ theirs per placement result["ratios_" + key]."""
    return [(name, key) for name, key in (("pytorch", "torch"), ("pt-bf16", "torch_bf16")) if key in result]


def speed_ratios(ours, theirs):
    """Ours ÷ theirs in examples/s, per placement."""
    return {o["placement"]: o["examples_per_second"] / t["examples_per_second"] for o, t in zip(ours, theirs)}


def print_result(who, r):
    losses = "→".join(f"{x:.3f}" for x in r["epoch_losses"])
    print(f"  {who:8s} {r['placement']:3s} (layers {','.join(map(str, r['layers']))}): {r['seconds']:.1f} s, "
          f"{r['examples_per_second']:.1f} examples/s, {r['real_tokens_per_second']:.0f} real tokens/s, "
          f"padding {r['padding_percent']:.1f}%, test accuracy {100 * r['test_accuracy']:.2f}%, loss {losses}, "
          f"threads {r['threads']}")
    if "cpu_seconds" in r:
        print(f"           CPU time of the training loop: {r['cpu_seconds']:.1f} s")
    if "process_cpu_seconds" in r:
        print(f"           CPU time of the whole bench process (loading, every placement, evaluation): "
              f"{r['process_cpu_seconds']:.1f} s")


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="compare-train-") as work:
        train_path, test_path = tm.resolve(args.data), tm.resolve(args.test)
        for path in (train_path, test_path, os.path.join(tm.resolve(args.model), "model.safetensors")):
            if not os.path.exists(path):
                raise SystemExit(f"missing {path}: run `make setup` first, or pass --data/--test/--model")
        if args.train_limit:
            train_path = subset_file(train_path, args.train_limit, work)
        result = {"configuration": describe(args), "uptime_before": tm.uptime()}
        if args.lethe:
            result["lethe"], result["lethe_command"] = run_ours(args, train_path, test_path)
        result["torch"] = run_torch(args, train_path, test_path)
        if args.precision == "bf16":
            result["torch_bf16"] = run_torch(args, train_path, test_path, "bf16")
        result["uptime_after"] = tm.uptime()
        if args.lethe:
            result["peak_gflops"] = tm.peak_gflops(args.lethe, args.threads, args.precision)
    if args.lethe:
        for _, key in torch_runs(result):
            result["ratios_" + key] = speed_ratios(result["lethe"], result[key])
    if args.json:
        print(json.dumps(result, indent=None, sort_keys=True))
        return
    print(f"LoRA classifier training, {describe(args)}")
    print(f"before: {result['uptime_before']}")
    for k in range(len(result["torch"])):
        if args.lethe:
            print_result("lethe", result["lethe"][k])
            if "cache" in result["lethe"][k]:
                print(f"           {result['lethe'][k]['cache']}")
        for name, key in torch_runs(result):
            print_result(name, result[key][k])
    if args.lethe:
        for name, key in torch_runs(result):
            runs, ratios = result[key], result["ratios_" + key]
            print()
            print(f"  lethe ({args.precision}) against {name}:")
            print(f"  {'placement':10s} {'lethe ex/s':>11s} {'torch ex/s':>11s} {'ratio':>7s} {'lethe acc':>10s} "
                  f"{'torch acc':>10s}")
            for o, t in zip(result["lethe"], runs):
                print(f"  {o['placement']:10s} {o['examples_per_second']:11.1f} {t['examples_per_second']:11.1f} "
                      f"{ratios[o['placement']]:6.2f}× {100 * o['test_accuracy']:9.2f}% "
                      f"{100 * t['test_accuracy']:9.2f}%")
        print()
        for o, t in zip(result["lethe"], result["torch"]):
            print(f"  {o['placement']}:")
            tm.print_ceiling("of training", t["seconds"], o["seconds"], t["flops_done"], t["flops_floor"],
                             result["peak_gflops"], t["flops_adapters"])
    print(f"after:  {result['uptime_after']}")


if __name__ == "__main__":
    sys.exit(main())
