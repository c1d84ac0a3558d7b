#!/usr/bin/env python3
"""The S3T schedule of `lethe train` in PyTorch + PEFT, on a run planned by `lethe plan`,
optionally side by side with ours.

Environment (outside the repository; a comparison tool, never a test dependency):
    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tools/requirements-torch.txt
Run (plan first; paths are relative to the repository root):
    .build/release/lethe plan --data Datasets/bbc-news/train.jsonl --shards 4 --slices 3 --budget 3 --run /tmp/s3t
    /work/venv-torch/bin/python Tools/compare_s3t_torch.py --run /tmp/s3t --threads 2
    /work/venv-torch/bin/python Tools/compare_s3t_torch.py --run /tmp/s3t --threads 2 --lethe .build/release/lethe
    # the demo's settings (Tools/demo.sh):
    ... --layers-per-block 1 --targets q k v o up down --lr 3e-3

The rule, as Sources/Training/S3T implements it (StageSchedule, S3TRunner, EncoderStageTrainer,
ShardModel, TrainingSettings defaults): read RUN/plan.h5 (docs/FORMAT.md). For each shard h and
each sequence π of h, stage i is the prefix π1..πi; its key is SHA-256 of the prefix's slice
hashes joined by newlines, and stages with equal keys are trained once. Stage i trains LoRA block
i counted from the top (layers N − i·n ..< N − (i−1)·n, n = --layers-per-block) and the head on
the examples of slices π1..πi (each slice's ids sorted, tombstoned ids left out), with the
adapters of stages 1..i−1 active and frozen, no adapters below the block, the base frozen. The
block starts fresh (lora_A from the stage seed, lora_B = 0); the head continues from stage i−1's
head (stage 1: fresh from the stage seed). The stage seed is SHA-256("lethe-stage-seed", run seed,
shard, key), which also seeds the batches, as ours. Training per stage: epochs, batch size
(default 16), AdamW lr (default 1e-3), 6 % warmup, linear decay, weight decay 0.01, clipping at 1
(Tools/torch_mirror.py). Serving: each shard serves its first sequence at full length (base +
the adapters of its L stages + the head of stage L); the ensemble predicts the argmax of the mean
of the shards' logits.

Timing: per stage, building its model (copy of the base, PEFT injection, loading inherited
tensors) plus its training loop, summed over stages — as ours records a stage's wall time.
With --lethe PATH, ours runs first on a fresh run directory planned by `PATH plan` with the
arguments recorded in RUN/plan.h5 (checked to give the same slices and sequences), then
`PATH train --json` with the same options and `PATH evaluate --json`; then PyTorch runs, and
the side-by-side table gives both training times, their ratio, both accuracies and the delta.
With --jobs N both sides train up to N shards at once in separate processes of --threads threads
(ours: `lethe train --jobs N`; PyTorch: worker processes of this script, whose start-up and
loading are left out of its time), and the times compared are the wall times of the training.
With --precision bf16 ours trains and evaluates in bfloat16 (`lethe train --precision bf16`) and
PyTorch runs twice, in float32 and under torch.autocast("cpu", dtype=torch.bfloat16) — how a
PyTorch team lowers precision on CPU — so one run gives both ratios (--torch-precision picks).
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

import torch_mirror as tm


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run directory holding plan.h5 (from `lethe plan`)")
    p.add_argument("--shard", type=int, action="append", default=[],
                   help="train only this shard (repeatable; default every shard); the ensemble is then the "
                        "trained shards' (ours: `lethe train --shard`)")
    p.add_argument("--data", help="dataset the plan was made from (default: the path the plan records)")
    p.add_argument("--test", default="Datasets/bbc-news/test.jsonl")
    p.add_argument("--model", default="Checkpoints/base/all-MiniLM-L6-v2")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--targets", nargs="+", default=["q", "v"], help="q k v o up down")
    p.add_argument("--layers-per-block", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--text-field", default="text", choices=["text", "text+lead"])
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="run seed (stage seeds derive from it)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lethe", help="also plan, train and evaluate the same run with PATH, first")
    p.add_argument("--lethe-run", help="run directory for ours (default: a temporary one, removed after)")
    p.add_argument("--jobs", type=int, default=1,
                   help="train up to N shards at once in separate processes, --threads threads each (ours: "
                        "`lethe train --jobs N`; pytorch: N worker processes of this script); the times compared "
                        "are then wall times of the whole training")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="ours: `lethe train --precision`; the peak the share is taken of")
    p.add_argument("--torch-precision", default=None,
                   help="comma-separated PyTorch runs, fp32 and/or bf16 (autocast); default fp32, or fp32,bf16 "
                        "with --precision bf16")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    for name in ("epochs", "rank", "layers_per_block", "batch_size", "threads", "max_tokens", "jobs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    args.target_modules = tm.parse_targets(" ".join(args.targets))
    args.torch_precisions = (args.torch_precision or ("fp32,bf16" if args.precision == "bf16" else "fp32")).split(",")
    for precision in args.torch_precisions:
        if precision not in ("fp32", "bf16"):
            p.error(f"--torch-precision {precision}: use fp32, bf16 or fp32,bf16")
    return args


# ---------------------------------------------------------------- the plan

class Plan:
    """RUN/plan.h5 (docs/FORMAT.md, format lethe-plan, versions 1 to 4), with its tombstone log."""

    def __init__(self, path):
        import h5py
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: plan the run first (lethe plan --data … --run DIR)")
        with h5py.File(path, "r") as f:
            a = f.attrs
            fmt = a.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            version = int(a.get("format_version", 0))
            if fmt != "lethe-plan" or version not in (1, 2, 3, 4):
                raise SystemExit(f"{path}: not a lethe-plan file of version 1 to 4 (format {fmt!r}, "
                                 f"version {a.get('format_version')})")
            has_log = version == 3 or (version == 4 and int(a.get("tombstone_log", 0)) == 1)

            def text(name):
                v = a[name]
                return v.decode() if isinstance(v, bytes) else str(v)

            self.attrs = {name: (text(name) if isinstance(a[name], (bytes, str)) else a[name]) for name in a}
            self.shards, self.slices, self.budget = int(a["shard_count"]), int(a["slice_count"]), int(a["budget"])
            self.ids = list(f["examples/ids"].asstr()[()])
            self.offsets = [int(x) for x in f["slices/offsets"][()]]
            self.hashes = list(f["slices/sha256"].asstr()[()])
            self.sequences = [[list(map(int, s)) for s in shard] for shard in f["sequences"][()]]
            self.labels = list(f["labels"].asstr()[()])
            self.tombstones = set(f["tombstones"].asstr()[()]) if "tombstones" in f else set()
        if has_log:
            # The tombstone log beside the plan: a header line, then one id per complete line.
            with open(os.path.splitext(path)[0] + ".tombstones", "rb") as log:
                lines = log.read().split(b"\n")[:-1]
            if not lines or lines[0] != b"lethe-tombstones 1":
                raise SystemExit(f"{path}: its tombstone log does not start with 'lethe-tombstones 1'")
            self.tombstones |= {line.decode() for line in lines[1:]}
        if len(self.offsets) != self.shards * self.slices + 1 or len(self.hashes) != self.shards * self.slices:
            raise SystemExit(f"{path}: slices/offsets or slices/sha256 do not match {self.shards} shards × "
                             f"{self.slices} slices")

    def members(self, shard, slice_):
        """The ids a slice trains on (sorted), tombstoned ones left out, as `lethe train`."""
        c = shard * self.slices + slice_
        return [i for i in self.ids[self.offsets[c]:self.offsets[c + 1]] if i not in self.tombstones]

    def slice_hash(self, shard, slice_):
        return self.hashes[shard * self.slices + slice_]


def stage_key(prefix_hashes):
    return hashlib.sha256("\n".join(prefix_hashes).encode()).hexdigest()


def stage_seed(run_seed, shard, key):
    digest = hashlib.sha256(b"lethe-stage-seed" + struct.pack("<QQ", run_seed & tm.MASK64, shard) + key.encode())
    return int.from_bytes(digest.digest()[:8], "little")


def schedule(plan, shard, layer_count, per_block):
    """StageSchedule: distinct stages in training order, and each sequence's stage keys."""
    if plan.slices * per_block > layer_count:
        raise SystemExit(f"--layers-per-block {per_block}: {plan.slices} slices × {per_block} layers must fit in "
                         f"the encoder's {layer_count} layers")
    stages, by_key, sequence_keys = [], {}, []
    for b, sequence in enumerate(plan.sequences[shard]):
        keys = []
        for i in range(1, plan.slices + 1):
            prefix = sequence[:i]
            key = stage_key([plan.slice_hash(shard, s) for s in prefix])
            keys.append(key)
            if key in by_key:
                by_key[key]["sequences"].append(b)
            else:
                by_key[key] = {"shard": shard, "sequences": [b], "stage": i, "prefix": prefix, "key": key,
                               "keys": list(keys),
                               "block": list(range(layer_count - i * per_block, layer_count - (i - 1) * per_block))}
                stages.append(by_key[key])
        sequence_keys.append(keys)
    return stages, sequence_keys


# ---------------------------------------------------------------- PyTorch

def adapter_tensors(classifier, layers):
    """{'encoder.layer.N.<module>': (lora_A, lora_B)} of `layers`, detached copies."""
    return {name: (m.lora_A["default"].weight.detach().clone(), m.lora_B["default"].weight.detach().clone())
            for name, m in tm.adapter_modules(classifier.encoder).items() if int(name.split(".")[2]) in layers}


def build(base, layers, adapters, head, args, classes, seed):
    """ShardModel.classifier: adapters on `layers` (fresh from `seed`), `adapters` loaded over them,
    the head fresh from `seed` then replaced by `head` when given."""
    import torch
    encoder = tm.lora_model(base, sorted(layers), args.target_modules, args.rank, args.alpha)
    classifier = tm.Classifier(encoder, classes, base.config.hidden_size, False, tm.derive(seed, -1))
    classifier.init_adapters({l: tm.derive(seed, l) for l in layers})
    modules = tm.adapter_modules(encoder)
    with torch.no_grad():
        for name, (a, b) in adapters.items():
            modules[name].lora_A["default"].weight.copy_(a)
            modules[name].lora_B["default"].weight.copy_(b)
        if head is not None:
            classifier.head.weight.copy_(head[0])
            classifier.head.bias.copy_(head[1])
    return classifier


def run_torch(args, plan, dataset, test_set, precision):
    import torch
    torch.set_num_threads(args.threads)
    model_dir = tm.resolve(args.model)
    labels = plan.labels
    index = {name: k for k, name in enumerate(labels)}
    for e in dataset.values():
        if e["label"] not in index:
            raise SystemExit(f"example {e['id']} has label {e['label']}, unknown to the plan")
    tokens = tm.Tokens(model_dir, args.max_tokens)
    order = sorted(dataset)
    encoded = dict(zip(order, tokens.encode([tm.model_input(dataset[i], args.text_field) for i in order])))
    base = tm.load_encoder(model_dir)
    layer_count = base.config.num_hidden_layers
    stage_lines, states, served_models = [], {}, []
    work = tm.Work(base.config.hidden_size, base.config.intermediate_size, layer_count, args.target_modules,
                   args.rank)
    total, first_start = 0.0, time.time()
    for shard in args.shards:
        stages, sequence_keys = schedule(plan, shard, layer_count, args.layers_per_block)
        for st in stages:
            ids = [i for s in st["prefix"] for i in plan.members(shard, s)]
            missing = [i for i in ids if i not in encoded]
            if missing:
                raise SystemExit(f"the plan names example {missing[0]}, which the dataset does not contain; "
                                 "pass the dataset the plan was made from with --data")
            ancestors = [states[k] for k in st["keys"][:-1]]
            inherited = {name: t for anc in ancestors for name, t in anc["adapters"].items()}
            seed = stage_seed(args.seed, shard, st["key"])
            start = time.monotonic()
            layers = set(st["block"]) | {int(n.split(".")[2]) for n in inherited}
            classifier = build(base, layers, inherited, ancestors[-1]["head"] if ancestors else None, args,
                               len(labels), seed)
            params = tm.trainable_parameters(classifier, set(st["block"]))
            built = time.monotonic() - start
            report = tm.train(classifier, params, [encoded[i] for i in ids], [index[dataset[i]["label"]] for i in ids],
                              args.epochs, args.batch_size, args.lr, seed, work=work,
                              lowest_trained=min(st["block"]), keys=ids, precision=precision,
                              adapter_layers=st["block"])
            seconds = time.monotonic() - start
            total += seconds
            states[st["key"]] = {"adapters": adapter_tensors(classifier, set(st["block"])),
                                 "head": (classifier.head.weight.detach().clone(), classifier.head.bias.detach().clone())}
            stage_lines.append({"shard": shard, "sequences": st["sequences"], "stage": st["stage"],
                                "prefix_slices": st["prefix"], "block_layers": st["block"], "stage_key": st["key"],
                                "training_loss": report["epoch_losses"][-1], "epoch_losses": report["epoch_losses"],
                                "examples_seen": report["examples"], "seconds": seconds, "build_seconds": built,
                                "cpu_seconds": report["cpu_seconds"]})
            if not args.json:
                print_stage(torch_name(precision), stage_lines[-1])
        served = sequence_keys[0]
        adapters = {name: t for k in served for name, t in states[k]["adapters"].items()}
        model = build(base, {int(n.split(".")[2]) for n in adapters}, adapters, states[served[-1]]["head"], args,
                      len(labels), 0)
        served_models.append(model)
    training_end = time.time()
    test_ids = tokens.encode([tm.model_input(e, args.text_field) for e in test_set])
    per_shard = [m.logits(test_ids, precision=precision) for m in served_models]
    result = {"training_seconds": total, "stages": stage_lines,
              "training_loop_cpu_seconds": sum(s["cpu_seconds"] for s in stage_lines),
              "threads": torch.get_num_threads(), "training_span": [first_start, training_end],
              "precision": precision,
              "flops_done": work.done, "flops_floor": work.floor_total(), "flops_adapters": work.adapters}
    if args.worker:
        result["shard_logits"] = [x.tolist() for x in per_shard]
        return result
    result.update(ensemble(per_shard, [index[e["label"]] for e in test_set]))
    return result


def ensemble(per_shard, truth):
    """Ensemble accuracy (argmax of the mean of the shards' logits) and each shard's accuracy."""
    import torch
    per_shard = [torch.as_tensor(x) for x in per_shard]
    mean = sum(per_shard[1:], per_shard[0].clone()) / len(per_shard)

    def accuracy(logits):
        return sum(p == t for p, t in zip(logits.argmax(dim=1).tolist(), truth)) / len(truth)

    return {"accuracy": accuracy(mean), "shard_accuracies": [accuracy(x) for x in per_shard]}


def torch_name(precision):
    return "pytorch" if precision == "fp32" else "pytorch-bf16"


def run_torch_jobs(args, plan, test_set, precision):
    """--jobs N: N worker processes (this script with --worker), the shards dealt round-robin among
    them, all started at once. The time compared is the span from the first worker's training start
    to the last one's end, so the workers' Python, torch and model loading are not counted."""
    base = [sys.executable, os.path.abspath(__file__), "--worker", "--json"]
    skip = {"--lethe", "--lethe-run", "--shard", "--jobs", "--torch-precision"}
    argv, k = [], 1
    while k < len(sys.argv):
        a = sys.argv[k]
        if a.split("=")[0] in skip:
            k += 1 if "=" in a else 2
            continue
        if a not in ("--json", "--worker"):
            argv.append(a)
        k += 1
    start = time.monotonic()
    groups = [args.shards[j::args.jobs] for j in range(min(args.jobs, len(args.shards)))]
    argv += ["--torch-precision", precision]
    workers = [(group, subprocess.Popen(base + argv + [x for h in group for x in ("--shard", str(h))],
                                        stdout=subprocess.PIPE, text=True)) for group in groups]
    results, logits = {}, {}
    for group, process in workers:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"pytorch worker for shards {group} failed with status {process.returncode}")
        results[tuple(group)] = json.loads(out.strip().splitlines()[-1])["torch"]
        logits.update(zip(group, results[tuple(group)]["shard_logits"]))
    stages = sorted((line for r in results.values() for line in r["stages"]), key=lambda s: s["shard"])
    if not args.json:
        for line in stages:
            print_stage(torch_name(precision), line)
    spans = [r["training_span"] for r in results.values()]
    index = {name: k for k, name in enumerate(plan.labels)}
    result = {"training_seconds": max(e for _, e in spans) - min(b for b, _ in spans), "stages": stages,
              "training_loop_cpu_seconds": sum(s["cpu_seconds"] for s in stages), "threads": args.threads,
              "jobs": args.jobs, "process_seconds": time.monotonic() - start, "precision": precision,
              "summed_stage_seconds": sum(s["seconds"] for s in stages),
              "flops_done": sum(r["flops_done"] for r in results.values()),
              "flops_floor": sum(r["flops_floor"] for r in results.values()),
              "flops_adapters": sum(r["flops_adapters"] for r in results.values())}
    result.update(ensemble([logits[shard] for shard in args.shards], [index[e["label"]] for e in test_set]))
    return result


def print_stage(who, s):
    rate = s["examples_seen"] / max(s["seconds"], 1e-9)
    print(f"  {who:7s} shard {s['shard']} seq {','.join(map(str, s['sequences']))} stage {s['stage']} "
          f"(slices {' '.join(map(str, s['prefix_slices']))}, layers {','.join(map(str, s['block_layers']))}): "
          f"loss {s['training_loss']:.4f}, {s['examples_seen']} examples, {s['seconds']:.1f} s, {rate:.0f} ex/s"
          + (f" (model built in {s['build_seconds']:.2f} s)" if "build_seconds" in s else ""), flush=True)


# ---------------------------------------------------------------- ours

def run_ours(args, plan, data_path, test_path, directory):
    """`lethe plan` (same arguments as RUN/plan.h5), `lethe train --json`, `lethe evaluate --json`."""
    lethe, root = os.path.abspath(args.lethe), tm.repo_root()
    a = plan.attrs
    command = [lethe, "plan", "--data", data_path, "--shards", str(plan.shards), "--slices", str(plan.slices),
               "--budget", str(plan.budget), "--selection", a["selection"], "--exponent", repr(float(a["bms_exponent"])),
               "--assign", a["assignment"], "--seed", str(int(a["seed"]) & tm.MASK64), "--run", directory, "--force"]
    if "prior" in a:
        prior = os.path.join(directory, "prior.json")
        os.makedirs(directory, exist_ok=True)
        with open(prior, "w") as f:
            json.dump([float(x) for x in np.asarray(a["prior"]).ravel()], f)
        command += ["--prior", prior]
    tm.run_lethe(command, root)
    copy = Plan(os.path.join(directory, "plan.h5"))
    if copy.hashes != plan.hashes or copy.sequences != plan.sequences or copy.tombstones != plan.tombstones:
        raise SystemExit(f"`lethe plan` with the arguments of {args.run}/plan.h5 gave other slices or sequences "
                         "(a plan with deletions cannot be re-planned); compare on a fresh plan")
    train = [lethe, "train", "--run", directory, "--epochs", str(args.epochs), "--rank", str(args.rank),
             "--alpha", str(args.alpha), "--targets", *args.target_modules, "--layers-per-block",
             str(args.layers_per_block), "--lr", str(args.lr), "--batch-size", str(args.batch_size),
             "--text-field", args.text_field, "--max-tokens", str(args.max_tokens), "--seed", str(args.seed),
             "--threads", str(args.threads), "--model", tm.resolve(args.model), "--data", data_path, "--json",
             "--jobs", str(args.jobs), "--precision", args.precision]
    for shard in args.shards:
        train += ["--shard", str(shard)]
    out, wall, cpu = tm.run_lethe(train, root)
    stages, done = [], None
    for line in out.splitlines():
        event = json.loads(line)
        if event.get("event") == "trained":
            event["seconds"] = event["wall_time_seconds"]
            stages.append(event)
            if not args.json:
                print_stage("lethe", event)
        elif event.get("event") == "done":
            done = event
    if done is None:
        raise SystemExit("`lethe train --json` printed no done line:\n" + out)
    out, _, _ = tm.run_lethe([lethe, "evaluate", "--run", directory, "--data", test_path, "--json"], root)
    evaluation = json.loads(out)
    # With --jobs the shards overlap: the time compared is the wall time of the parallel training.
    seconds = done["wall_seconds"] if args.jobs > 1 else done["training_seconds"]
    return {"training_seconds": seconds, "summed_stage_seconds": done["training_seconds"],
            "process_seconds": wall, "process_cpu_seconds": cpu,
            "stages": stages,
            "accuracy": evaluation["accuracy"], "shard_accuracies": [s["accuracy"] for s in evaluation["shards"]],
            "threads": args.threads, "precision": args.precision,
            "commands": [" ".join(command), " ".join(train)]}


def main():
    args = parse_args()
    plan = Plan(os.path.join(args.run, "plan.h5"))
    data_path = tm.resolve(args.data or plan.attrs["dataset_source"])
    test_path = tm.resolve(args.test)
    for path in (data_path, test_path, os.path.join(tm.resolve(args.model), "model.safetensors")):
        if not os.path.exists(path):
            raise SystemExit(f"missing {path}: run `make setup` first, or pass --data/--test/--model")
    if tm.sha256_file(data_path) != plan.attrs["dataset_sha256"]:
        raise SystemExit(f"{data_path} is not the dataset {args.run}/plan.h5 was made from (SHA-256 differs); "
                         "pass that file with --data")
    args.shards = sorted(set(args.shard)) or list(range(plan.shards))
    for shard in args.shards:
        if not 0 <= shard < plan.shards:
            raise SystemExit(f"--shard {shard}: the plan has shards 0..{plan.shards - 1}")
    dataset = {e["id"]: e for e in tm.read_jsonl(data_path)}
    test_set = tm.read_jsonl(test_path)
    settings = (f"{plan.shards} shards × {plan.slices} slices × {plan.budget} sequences, {args.epochs} epochs, "
                f"r={args.rank}, alpha={args.alpha:g} on {', '.join(args.target_modules)}, {args.layers_per_block} "
                f"layers per block, lr {args.lr:g}, batch {args.batch_size}, text field {args.text_field}, "
                f"seed {args.seed}, {args.threads} threads" + (f", {args.jobs} shards at once" if args.jobs > 1 else "")
                + f"; ours in {args.precision}, pytorch in {' and '.join(args.torch_precisions)}"
                + ("" if len(args.shards) == plan.shards else f"; shards {', '.join(map(str, args.shards))} only"))
    result = {"configuration": settings, "uptime_before": tm.uptime()}
    if not args.json:
        print(f"S3T schedule: {settings}")
        print(f"before: {result['uptime_before']}")
    if args.lethe:
        directory = args.lethe_run or tempfile.mkdtemp(prefix="lethe-s3t-")
        try:
            result["lethe"] = run_ours(args, plan, data_path, test_path, directory)
        finally:
            if not args.lethe_run:
                shutil.rmtree(directory, ignore_errors=True)
    # "torch" is the first PyTorch run (float32 unless --torch-precision says otherwise), "torch_bf16"
    # the autocast one when both ran.
    names = {}
    for precision in args.torch_precisions:
        key = "torch" if not names else f"torch_{precision}"
        names[key] = precision
        if args.jobs > 1 and len(args.shards) > 1 and not args.worker:
            result[key] = run_torch_jobs(args, plan, test_set, precision)
        else:
            result[key] = run_torch(args, plan, dataset, test_set, precision)
    result["uptime_after"] = tm.uptime()
    if args.lethe and not args.worker:
        result["peak_gflops"] = tm.peak_gflops(args.lethe, args.threads * max(args.jobs, 1), args.precision)
    if args.lethe:
        for key in names:
            suffix = key[len("torch"):]
            result["ratio" + suffix] = result[key]["training_seconds"] / result["lethe"]["training_seconds"]
            result["accuracy_delta_points" + suffix] = 100 * (result["lethe"]["accuracy"] - result[key]["accuracy"])
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return
    labels = {"lethe": f"lethe ({args.precision})", **{k: torch_name(p) for k, p in names.items()}}
    for who in labels:
        if who in result:
            r = result[who]
            shards = ", ".join(f"{100 * x:.2f}%" for x in r["shard_accuracies"])
            wall = (f" (wall time, {args.jobs} shards at once; the stages sum to {r['summed_stage_seconds']:.1f} s)"
                    if "summed_stage_seconds" in r and args.jobs > 1 else "")
            print(f"{labels[who]}: {r['training_seconds']:.1f} s of training{wall} "
                  f"({len(r['stages'])} stages), ensemble test accuracy {100 * r['accuracy']:.2f}%, "
                  f"shards {shards}")
    if args.lethe:
        o = result["lethe"]
        for key in names:
            t, suffix = result[key], key[len("torch"):]
            print(f"side by side: {labels['lethe']} {o['training_seconds']:.1f} s vs {labels[key]} "
                  f"{t['training_seconds']:.1f} s = {result['ratio' + suffix]:.2f}× faster; accuracy "
                  f"{100 * o['accuracy']:.2f}% vs {100 * t['accuracy']:.2f}% "
                  f"(delta {result['accuracy_delta_points' + suffix]:+.2f} points)")
            print(f"CPU time: lethe train process {o['process_cpu_seconds']:.1f} s (wall {o['process_seconds']:.1f} s, "
                  f"loading included); {labels[key]} training loops {t['training_loop_cpu_seconds']:.1f} s")
            theirs = {(s["shard"], s["stage_key"]): s["training_loss"] for s in t["stages"]}
            losses = [(s["training_loss"], theirs[(s["shard"], s["stage_key"])]) for s in o["stages"]
                      if (s["shard"], s["stage_key"]) in theirs]
            worst = max(abs(a - b) for a, b in losses) if losses else 0
            print(f"stage losses (last epoch): largest |lethe − {labels[key]}| = {worst:.4f} over {len(losses)} stages")
        t = result["torch"]
        print(f"peak of {args.precision} on {args.threads * max(args.jobs, 1)} threads: {result['peak_gflops']:.1f} GFLOP/s")
        tm.print_ceiling("of training", t["training_seconds"], o["training_seconds"], t["flops_done"],
                         t["flops_floor"], result["peak_gflops"], t["flops_adapters"])
    print(f"after:  {result['uptime_after']}")


if __name__ == "__main__":
    sys.exit(main())
