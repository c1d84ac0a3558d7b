"""Shared parts of the PyTorch + PEFT side-by-side scripts (compare_train_torch.py,
compare_s3t_torch.py): Lethe's training rule, mirrored in PyTorch.

A comparison tool, never a test dependency. Environment (outside the repository):
    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tools/requirements-torch.txt

What is mirrored, and from where:
- Data: JSON Lines (`id`, `text`, `label`, optional `lead`); the text field is `text` or
  `text+lead` (text, a space, the lead; examples without a lead use their text), as in
  Sources/Training/Data/TextField.swift. Labels are the sorted distinct label names.
- Tokens: the model's own tokenizer.json (the reference our WordPiece tokenizer matches id for
  id), truncated to the maximum length, [CLS]/[SEP] included, no padding.
- Model: transformers' BertModel (no pooler, hidden and attention dropout 0: our encoder has
  no dropout), PEFT LoRA (`LoraConfig` r, lora_alpha, target_modules, layers_to_transform,
  lora_dropout 0), masked mean pooling of the last hidden state, optional L2 normalisation, and
  a linear head (Sources/Models/Classifier).
- Initial values, bit for bit: lora_A of every adapter and the head drawn from the same
  SplitMix64 streams as LoRAAdapter.swift, EncoderLayer.freshAdapters and ClassificationHead;
  lora_B = 0.
- Batches, bit for bit: LengthBucketBatcher.swift (seeded shuffle, windows of batch × 16
  examples sorted by length, batches shuffled), each padded to its longest member, so PyTorch
  sees exactly our batches and our padding.
- Optimiser: torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0.01 on every
  trainable tensor), clip_grad_norm_ 1.0, learning rate of LearningRateSchedule.swift (warmup
  over round(0.06 · steps) steps starting at peak/W, then linear decay to 0), mean cross-entropy.
What is not mirrored: our activation cache. PyTorch runs the frozen layers below the lowest
adapter on every step (autograd already stops there, as no parameter below needs a gradient).
"""
import copy
import hashlib
import json
import math
import os
import re
import resource
import subprocess
import time

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

# LoRATarget.allCases order (LoRAConfiguration.swift): index = position, raw value = HF module path.
TARGETS = ["attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output.dense", "intermediate.dense", "output.dense"]
# Command-line names of Sources/lethe/LoRATarget+Argument.swift.
SHORT_TARGETS = {"q": 0, "query": 0, "k": 1, "key": 1, "v": 2, "value": 2, "o": 3, "attention.output": 3,
                 "up": 4, "intermediate": 4, "down": 5, "output": 5}


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve(path):
    """A path relative to the repository root (absolute paths unchanged)."""
    return path if os.path.isabs(path) else os.path.join(repo_root(), path)


def parse_targets(text):
    """'q,v' or 'q v' or module paths -> module paths in LoRATarget order."""
    names = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    result = set()
    for name in names:
        if name in TARGETS:
            result.add(name)
        elif name in SHORT_TARGETS:
            result.add(TARGETS[SHORT_TARGETS[name]])
        else:
            raise SystemExit(f"--targets {name}: use q, k, v, o, up, down (or the module paths {', '.join(TARGETS)})")
    return sorted(result, key=TARGETS.index)


# ---------------------------------------------------------------- SplitMix64 (Sources/Models/Support)

def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + GOLDEN) & MASK64
        return _mix(self.state)

    def next_below(self, bound):
        limit = MASK64 - MASK64 % bound
        while True:
            draw = self.next()
            if draw < limit:
                return draw % bound

    def shuffle(self, values):
        for i in range(len(values) - 1, 0, -1):
            j = self.next_below(i + 1)
            values[i], values[j] = values[j], values[i]


def derive(seed, *parts):
    """SplitMix64.derive(seed, parts...)."""
    value = SplitMix64(seed).next()
    for p in parts:
        value = SplitMix64(value ^ ((p & MASK64) * GOLDEN & MASK64)).next()
    return value


def _stream(seed, count):
    """The first `count` draws of SplitMix64(seed), as uint64 (vectorised)."""
    steps = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + steps * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def lora_a_init(in_features, rank, seed):
    """LoRAAdapter's lora_A [rank, in]: (2u − 1)/√in in float32, u the top 24 bits / 2^24."""
    u = (_stream(seed, rank * in_features) >> np.uint64(40)).astype(np.float32) / np.float32(16_777_216.0)
    bound = np.float32(1) / np.sqrt(np.float32(in_features))
    return ((np.float32(2) * u - np.float32(1)) * bound).reshape(rank, in_features)


def fresh_adapter_seed(layer_seed, target):
    """EncoderLayer.freshAdapters: seed &+ (index + 1) &* 0xD1B54A32D192ED03."""
    return (layer_seed + (TARGETS.index(target) + 1) * 0xD1B54A32D192ED03) & MASK64


def head_init(classes, hidden, seed):
    """ClassificationHead: W then b from one SplitMix64 stream, U(±1/√hidden) in float32."""
    bound = np.float32(1) / np.sqrt(np.float32(hidden))
    low, span = -bound, bound - (-bound)
    k = (_stream(seed, classes * hidden + classes) >> np.uint64(40)).astype(np.float32)
    values = low + span * k * np.float32(2.0 ** -24)
    return values[:classes * hidden].reshape(classes, hidden), values[classes * hidden:]


# ---------------------------------------------------------------- batches and schedule (Sources/Training)

def length_bucket_batches(lengths, batch_size, epoch, seed, bucket_window=16):
    """LengthBucketBatcher.batches(epoch:)."""
    g = SplitMix64((seed + 0xD1B54A32D192ED03 * (epoch + 1)) & MASK64)
    order = list(range(len(lengths)))
    g.shuffle(order)
    batches = []
    window = batch_size * bucket_window
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: (lengths[i], i))
        batches.extend(chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size))
    g.shuffle(batches)
    return batches


def warmup_steps(total_steps, fraction):
    """Int((Float(total) · fraction).rounded()) in float32, halves away from zero."""
    x = float(np.float32(total_steps) * np.float32(fraction))
    return int(math.floor(x + 0.5))


def learning_rate(step, peak, warmup, total):
    """LearningRateSchedule.rate(at:) for the 0-based step."""
    warmup = min(warmup, total)
    if step < warmup:
        return peak * (step + 1) / warmup
    remaining, decay = total - step, total - warmup
    return peak * remaining / decay if remaining > 0 and decay > 0 else 0.0


# ---------------------------------------------------------------- data

def read_jsonl(path):
    examples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError as error:
                raise SystemExit(f"{path}:{number}: not JSON ({error}); fix or remove the line")
            for field in ("id", "text", "label"):
                if not isinstance(e.get(field), str) or not e[field]:
                    raise SystemExit(f"{path}:{number}: field '{field}' missing or empty")
            examples.append(e)
    if not examples:
        raise SystemExit(f"{path}: no examples")
    return examples


def model_input(example, text_field):
    if text_field == "text":
        return example["text"]
    if text_field == "text+lead":
        lead = example.get("lead")
        return example["text"] + " " + lead if isinstance(lead, str) and lead else example["text"]
    raise SystemExit(f"--text-field {text_field}: use text or text+lead")


class Tokens:
    """The model's reference tokenizer (tokenizer.json), truncation to max_length, no padding."""

    def __init__(self, model_dir, max_length):
        from tokenizers import Tokenizer
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=min(max_length, 512))

    def encode(self, texts):
        return [e.ids for e in self.tokenizer.encode_batch(texts)]


# ---------------------------------------------------------------- model

def load_encoder(model_dir):
    """BertModel without pooler; dropout off (ours has none), weights frozen."""
    import warnings
    from transformers import BertModel
    from transformers.utils import logging
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*UNEXPECTED.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # The checkpoint's pooler weights are not loaded (no pooler: we pool by mean), hence a load report.
    model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0)
    model.requires_grad_(False)
    return model


def lora_model(base, layers, targets, rank, alpha):
    """A fresh copy of `base` with PEFT LoRA adapters on `targets` of `layers` only.

    The injected modules are checked against the expected set (PEFT's suffix matching would put
    an `output.dense` adapter on `attention.output.dense` as well, which exclude_modules prevents).
    """
    from peft import LoraConfig, get_peft_model
    exclude = ["attention.output.dense"] if "output.dense" in targets and "attention.output.dense" not in targets else None
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", target_modules=list(targets),
                        layers_to_transform=sorted(layers), exclude_modules=exclude)
    model = get_peft_model(copy.deepcopy(base), config)
    found = {name[:-len(".lora_A.default.weight")] for name, _ in model.named_parameters()
             if name.endswith(".lora_A.default.weight")}
    found = {re.sub(r"^.*?(encoder\.layer\.)", r"\1", name) for name in found}
    expected = {f"encoder.layer.{l}.{t}" for l in layers for t in targets}
    if found != expected:
        raise SystemExit(f"PEFT placed adapters on {sorted(found)}, expected {sorted(expected)}")
    return model


def adapter_modules(model):
    """{'encoder.layer.N.<module>': PEFT LoRA layer} of a PEFT model."""
    result = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            result[re.sub(r"^.*?(encoder\.layer\.)", r"\1", name)] = module
    return result


class Classifier:
    """PEFT encoder + masked mean pooling (+ optional L2 normalisation) + linear head."""

    def __init__(self, encoder, classes, hidden, normalize, head_seed):
        import torch
        self.encoder, self.normalize = encoder, normalize
        self.head = torch.nn.Linear(hidden, classes)
        w, b = head_init(classes, hidden, head_seed)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(w))
            self.head.bias.copy_(torch.from_numpy(b))

    def init_adapters(self, layer_seeds):
        """lora_A of every adapter on layer l from LoRAClassifier's seed derive(seed, l); lora_B = 0."""
        import torch
        with torch.no_grad():
            for name, module in adapter_modules(self.encoder).items():
                layer = int(name.split(".")[2])
                target = name.split(".", 3)[3]
                a = module.lora_A["default"].weight
                a.copy_(torch.from_numpy(lora_a_init(a.shape[1], a.shape[0],
                                                     fresh_adapter_seed(layer_seeds[layer], target))))
                module.lora_B["default"].weight.zero_()

    def forward(self, ids, mask):
        import torch
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1, eps=1e-12)
        return self.head(pooled)

    def logits(self, ids, batch_size=64, precision="fp32"):
        """Logits of every token list, in batches of `batch_size` sorted by length (as `predict`),
        under autocast for "bf16"."""
        import torch
        self.encoder.eval()
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        result = [None] * len(ids)
        with torch.inference_mode(), autocast(precision):
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                out = self.forward(*pad([ids[i] for i in chunk])).float()
                for row, index in enumerate(chunk):
                    result[index] = out[row].clone()
        return torch.stack(result)


def pad(sequences, pad_id=0):
    import torch
    t = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), t), dtype=torch.long)
    for b, s in enumerate(sequences):
        ids[b, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[b, :len(s)] = 1
    return ids, mask


def trainable_parameters(classifier, layers):
    """LoRA A and B of `layers` then the head; marks them trainable, everything else frozen."""
    classifier.encoder.requires_grad_(False)
    params = []
    for name, module in sorted(adapter_modules(classifier.encoder).items()):
        if int(name.split(".")[2]) in layers:
            for p in (module.lora_A["default"].weight, module.lora_B["default"].weight):
                p.requires_grad_(True)
                params.append(p)
    for p in (classifier.head.weight, classifier.head.bias):
        p.requires_grad_(True)
        params.append(p)
    return params


def autocast(precision):
    """The context a PyTorch team uses for lower precision on CPU: torch.autocast with bfloat16
    for "bf16" (products in bf16, reductions and the loss in float32), nothing for "fp32"."""
    import contextlib
    import torch
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    raise SystemExit(f"precision {precision!r}: use fp32 or bf16")


def train(classifier, params, ids, labels, epochs, batch_size, lr, seed, warmup_fraction=0.06,
          weight_decay=0.01, clip=1.0, work=None, lowest_trained=0, keys=None, precision="fp32",
          adapter_layers=None):
    """Our ClassifierTrainer's loop; returns steps, per-epoch mean losses, examples, real/padded tokens.
    With `work` (a Work), every step's FLOPs are counted into it, the trained layers being
    lowest_trained..top, the adapters trained on `adapter_layers` (default: those) and `keys` naming
    the examples (default: their positions). With precision
    "bf16" the forward pass and the loss run under torch.autocast (the backward follows it)."""
    import torch
    lengths = [len(s) for s in ids]
    steps_per_epoch = len(length_bucket_batches(lengths, batch_size, 0, seed))
    total = steps_per_epoch * epochs
    warm = warmup_steps(total, warmup_fraction)
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    target = torch.tensor(labels, dtype=torch.long)
    classifier.encoder.train()
    cpu_start = time.process_time()
    step = seen = real = padded = 0
    epoch_losses = []
    for epoch in range(epochs):
        loss_sum, batches = 0.0, length_bucket_batches(lengths, batch_size, epoch, seed)
        for members in batches:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, lr, warm, total)
            step += 1
            x, mask = pad([ids[i] for i in members])
            if work is not None:
                work.step([lengths[i] for i in members], lowest_trained,
                          [keys[i] if keys else i for i in members], adapter_layers)
            with autocast(precision):
                loss = torch.nn.functional.cross_entropy(classifier.forward(x, mask).float(), target[members])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            loss_sum += loss.item()
            seen += len(members)
            real += sum(lengths[i] for i in members)
            padded += x.numel()
        epoch_losses.append(loss_sum / len(batches))
    return {"steps": step, "epoch_losses": epoch_losses, "examples": seen, "real_tokens": real,
            "padded_tokens": padded, "cpu_seconds": time.process_time() - cpu_start}


# ---------------------------------------------------------------- running ours

def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        with open("/proc/loadavg") as f:
            return "load average: " + " ".join(f.read().split()[:3])


def run_lethe(args, cwd):
    """Runs the lethe binary (OPENBLAS_CORETYPE removed from its environment); (stdout, wall seconds,
    CPU seconds of the whole process) or an error naming the command."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    start, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    except OSError as error:
        raise SystemExit(f"cannot run {args[0]} ({error.strerror}); pass the lethe binary with --lethe "
                         "(build it with `swift build -c release`)")
    seconds, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed with status {done.returncode}:\n{done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout, seconds, cpu


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- work and the machine's ceiling

def layer_flops(lengths, padded, hidden, ffn, backward, input_gradient=True):
    """FLOPs (2 per multiply-add) of one post-LN BERT layer on a batch of sequences with these real
    token counts, each padded to `padded` tokens (None: no padding), forward and, if `backward`, the
    backward of a layer with frozen weights: input gradients only (as many FLOPs as the forward's
    products; without `input_gradient` the q, k, v products need none, as in the lowest trained
    layer), four attention products for the forward's two. The adapters' rank-r products are left
    out (a floor)."""
    tokens = [padded or t for t in lengths]
    n, squares = sum(tokens), sum(t * t for t in tokens)
    dense = 2 * n * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 4 * squares * hidden
    total = dense + attention
    if backward:
        total += (dense if input_gradient else 2 * n * (hidden * hidden + 2 * hidden * ffn)) + 2 * attention
    return total


def adapter_flops(tokens, hidden, ffn, targets, rank, input_gradient=True):
    """FLOPs of the adapters' rank-r products of one trained layer on `tokens` real tokens, per
    target with input width I and output width O: forward x·Aᵀ and (x·Aᵀ)·Bᵀ, backward dY·B, the
    gradients of B and A, and the input gradient through the adapter (not for q, k, v of the
    lowest trained layer) — 2·n·r·(2I + 3O [+ I]). Every implementation does these; they are the
    trained part, left out of the floor and counted beside it."""
    total = 0
    for target in targets:
        i, o = {"intermediate.dense": (hidden, ffn), "output.dense": (ffn, hidden)}.get(target, (hidden, hidden))
        needs_input = input_gradient or target not in TARGETS[:3]
        total += 2 * tokens * rank * (2 * i + 3 * o + (i if needs_input else 0))
    return total


class Work:
    """The FLOPs of a training run, counted two ways from its batches:
    - `done`: what PyTorch does for it (every layer forward on the padded batch at every step, the
      backward from the top down to the lowest trained layer);
    - `floor`: what any implementation needs at least (real tokens only, no padding; layers below the
      lowest trained one run once per example for the whole run, since they are frozen and carry
      no adapters; backward as above);
    - `adapters`: the trained adapters' products (`adapter_flops`, real tokens), when the Work
      knows the targets and rank."""

    def __init__(self, hidden, ffn, layer_count, targets=(), rank=0):
        self.hidden, self.ffn, self.layer_count = hidden, ffn, layer_count
        self.targets, self.rank = list(targets), rank
        self.done = self.floor = self.adapters = 0
        self.cached = {}   # example key -> (layers below the trained ones, real tokens)

    def step(self, lengths, lowest_trained, keys, adapter_layers=None):
        """One training step on sequences of these real lengths, trained layers lowest_trained..top
        (backward), adapters trained on `adapter_layers` (default: all of those)."""
        c, f, top = self.hidden, self.ffn, self.layer_count
        for layer in adapter_layers if adapter_layers is not None else range(lowest_trained, top):
            self.adapters += adapter_flops(sum(lengths), c, f, self.targets, self.rank, layer > lowest_trained)
        t = max(lengths)
        for layer in range(top):
            trained = layer >= lowest_trained
            self.done += layer_flops(lengths, t, c, f, trained, layer > lowest_trained)
            if trained:
                self.floor += layer_flops(lengths, None, c, f, True, layer > lowest_trained)
        for key, length in zip(keys, lengths):
            below, _ = self.cached.get(key, (0, length))
            self.cached[key] = (max(below, lowest_trained), length)

    def floor_total(self):
        """`floor` plus each example's frozen layers, once."""
        once = sum(below * layer_flops([length], None, self.hidden, self.ffn, False)
                   for below, length in self.cached.values())
        return self.floor + once


def peak_gflops(lethe, threads, precision="fp32"):
    """`lethe bench peak --threads N --json`: the ceiling of this CPU on N threads at once for the
    precision — the median rate of the register-resident FMA loop (fp32) or of the bf16 dot-product
    loop (bf16, where the CPU has AVX512-BF16; else the fp32 one)."""
    out, _, _ = run_lethe([os.path.abspath(lethe), "bench", "peak", "--threads", str(threads), "--json"], None)
    measurement = json.loads(out)["measurements"][-1]
    if precision == "bf16" and measurement.get("bf16_gflops"):
        return measurement["bf16_gflops"]
    return measurement["ceiling_gflops"]


def print_ceiling(who_time, torch_seconds, ours_seconds, done, floor, peak, adapters=0):
    """Prints what the machine allows: the floor of the run's work at the FMA peak, and the largest
    speed-up over PyTorch's time that any implementation could reach here (FLOPs from Work); with
    `adapters` (Work.adapters) the same once more for floor + adapters, the run's whole necessary
    arithmetic."""
    at_peak = floor / (peak * 1e9)
    print(f"work: PyTorch did {done / 1e12:.2f} TFLOP ({done / torch_seconds / 1e9:.1f} GFLOP/s); "
          f"the floor is {floor / 1e12:.2f} TFLOP (real tokens only, frozen layers below the trained ones "
          f"once per example)")
    line = (f"ceiling: at the FMA peak of {peak:.1f} GFLOP/s the floor takes {at_peak:.1f} s, so no implementation "
            f"here can beat PyTorch's {torch_seconds:.1f} s {who_time} by more than {torch_seconds / at_peak:.2f}×")
    if ours_seconds:
        line += (f"; ours ran the floor at {floor / ours_seconds / 1e9:.1f} GFLOP/s "
                 f"= {100 * floor / ours_seconds / 1e9 / peak:.0f}% of the peak")
    print(line)
    if adapters:
        total = floor + adapters
        line = (f"with the adapters' products ({adapters / 1e12:.2f} TFLOP more): the ceiling is "
                f"{torch_seconds / (total / (peak * 1e9)):.2f}×")
        if ours_seconds:
            line += f"; ours ran it at {100 * total / ours_seconds / 1e9 / peak:.0f}% of the peak"
        print(line)
