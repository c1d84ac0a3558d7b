#!/usr/bin/env python3
"""PyTorch float32 reference for `lethe bench decoder`: LoRA training tokens/s of SmolLM2-135M.

Environment (shared, outside the repo; see COMMON brief):
    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch numpy
Run (same sizes as the Swift benchmark, OPENBLAS_CORETYPE unset, same thread count):
    /work/venv-torch/bin/python Tools/compare_decoder_torch.py --batch 4 --tokens 128 --steps 3 --threads 2
    .build/release/lethe bench decoder --batch 4 --tokens 128 --steps 3 --threads 2
or both, taking turns, with the ratio of each round and their median (this machine's speed drifts
by tens of percent within minutes, so only ratios measured side by side mean anything):
    /work/venv-torch/bin/python Tools/compare_decoder_torch.py --rounds 5 --lethe .build/release/lethe
The model is the same Llama architecture (30 blocks, hidden 576, FFN 1536, 9/3 heads of 64, RoPE
adjacent pairs base 1e5, RMSNorm, SwiGLU, tied 49,152 × 576 head) with random float32 weights
(speed does not depend on the values); LoRA r=8, alpha=16 on q,k,v,o,gate,up,down; AdamW;
the loss is next-token cross-entropy over all positions, as in Lethe's fine-tune objective.
With --precision bf16, ours runs `lethe bench decoder --precision bf16` and PyTorch runs each round
twice, in float32 and under torch.autocast("cpu", dtype=torch.bfloat16), so one run gives both
ratios; the ceiling is then the bf16 peak.
"""
import argparse, re, statistics, subprocess, time
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=4)
p.add_argument("--tokens", type=int, default=128)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--rank", type=int, default=8)
p.add_argument("--lethe", help="PATH of the lethe binary: print the ceiling its `bench peak` allows")
p.add_argument("--rounds", type=int, default=1,
               help="with --lethe: alternate `lethe bench decoder` and PyTorch this many times")
p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
               help="ours: `lethe bench decoder --precision`; bf16 also times PyTorch under bf16 autocast")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
C, FF, L, H, KV, D, V = 576, 1536, 30, 9, 3, 64, 49152

class LoRA(torch.nn.Module):
    def __init__(self, i, o, r):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(o, i) * 0.02, requires_grad=False)
        self.a = torch.nn.Parameter(torch.empty(r, i).uniform_(-i ** -0.5, i ** -0.5))
        self.b = torch.nn.Parameter(torch.zeros(o, r))
        self.s = 2.0
    def forward(self, x):
        return x @ self.w.T + self.s * (x @ self.a.T) @ self.b.T

def rms(x, g):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * g

pos = torch.arange(a.tokens)[:, None] * (1e5 ** (-torch.arange(0, D, 2) / D))[None, :]
cos, sin = pos.cos(), pos.sin()
def rope(x):  # x [B, h, T, D], adjacent pairs
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2)

class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        r = a.rank
        self.q, self.k, self.v, self.o = LoRA(C, H * D, r), LoRA(C, KV * D, r), LoRA(C, KV * D, r), LoRA(H * D, C, r)
        self.g, self.u, self.d = LoRA(C, FF, r), LoRA(C, FF, r), LoRA(FF, C, r)
        self.n1 = torch.nn.Parameter(torch.ones(C), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(C), requires_grad=False)
    def forward(self, x):
        B, T, _ = x.shape
        h = rms(x, self.n1)
        q = rope(self.q(h).view(B, T, H, D).transpose(1, 2))
        k = rope(self.k(h).view(B, T, KV, D).transpose(1, 2)).repeat_interleave(H // KV, 1)
        v = self.v(h).view(B, T, KV, D).transpose(1, 2).repeat_interleave(H // KV, 1)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, H * D)
        x = x + self.o(att)
        h = rms(x, self.n2)
        return x + self.d(F.silu(self.g(h)) * self.u(h))

emb = torch.nn.Parameter(torch.randn(V, C) * 0.02, requires_grad=False)
blocks = torch.nn.ModuleList(Block() for _ in range(L))
norm = torch.nn.Parameter(torch.ones(C), requires_grad=False)
params = [p for p in blocks.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
ids = torch.randint(0, V, (a.batch, a.tokens))

import contextlib
def autocast(precision):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

def train_step(precision="fp32"):
    with autocast(precision):
        x = emb[ids]
        for b in blocks:
            x = b(x)
        logits = rms(x, norm)[:, :-1] @ emb.T
        loss = F.cross_entropy(logits.reshape(-1, V).float(), ids[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()

def torch_round(precision="fp32"):
    """Median seconds of `a.steps` timed steps."""
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        train_step(precision)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]

def lethe_round():
    """Training tokens/s of one `lethe bench decoder` run with the same sizes and threads."""
    out = subprocess.run([a.lethe, "bench", "decoder", "--batch", str(a.batch), "--tokens", str(a.tokens),
                          "--steps", str(a.steps), "--threads", str(a.threads), "--rank", str(a.rank),
                          "--precision", a.precision],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([0-9.]+) training tokens/s", out).group(1))

precisions = ["fp32", "bf16"] if a.precision == "bf16" else ["fp32"]
for precision in precisions:
    train_step(precision)  # warm-up: the allocator's caches, the thread pool, oneDNN's kernels
ratios, medians = {p: [] for p in precisions}, {p: [] for p in precisions}
for r in range(a.rounds if a.lethe else 1):
    ours = lethe_round() if a.lethe and a.rounds > 1 else None
    for precision in precisions:
        medians[precision].append(torch_round(precision))
        m = medians[precision][-1]
        if ours is not None:
            ratios[precision].append(ours * m / (a.batch * a.tokens))
            print(f"round {r + 1}: lethe ({a.precision}) {ours:.0f}, torch {precision} {a.batch * a.tokens / m:.0f} "
                  f"training tokens/s: {ratios[precision][-1]:.2f}×", flush=True)
for precision in precisions:
    m = statistics.median(medians[precision])
    print(f"torch {torch.__version__} {precision}{' autocast' if precision == 'bf16' else ''} threads {a.threads}: "
          f"B={a.batch} T={a.tokens} median step {m:.3f} s, {a.batch * a.tokens / m:.0f} training tokens/s")
    if ratios[precision]:
        rs = ratios[precision]
        print(f"lethe ({a.precision}) over torch {precision}, {len(rs)} rounds: median {statistics.median(rs):.2f}×, "
              f"range {min(rs):.2f}–{max(rs):.2f}×")
m = statistics.median(medians["fp32"])
# The floor of the work per token, as LlamaConfiguration.frozenTrainingFLOPsPerToken: the forward and
# the input gradients through the frozen matrices (LM head included), attention backward twice its forward.
matrices = L * (2 * C * H * D + 2 * C * KV * D + 3 * C * FF) + V * C
per_token = 2 * (2 * matrices + 3 * L * 2 * C * a.tokens)
rate = a.batch * a.tokens / m
print(f"work floor {per_token / 1e9:.3f} GFLOP/token: PyTorch at {rate * per_token / 1e9:.1f} GFLOP/s")
if a.lethe:
    import torch_mirror as tm
    peak = tm.peak_gflops(a.lethe, a.threads, a.precision)
    print(f"ceiling: at the FMA peak of {peak:.1f} GFLOP/s the floor allows {peak * 1e9 / per_token:.0f} tokens/s, "
          f"so no implementation here can beat PyTorch's {rate:.0f} by more than {peak * 1e9 / per_token / rate:.2f}×")
