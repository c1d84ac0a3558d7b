#!/usr/bin/env python3
"""The `lethe bench kernels` block step in PyTorch, timed on 1 and 2 threads, for comparison.

Environment (outside the repository):
    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tools/requirements-torch.txt
Run (with the same OPENBLAS_CORETYPE setting as the Swift bench; PyTorch uses MKL anyway):
    /work/venv-torch/bin/python Tools/compare_block_step_torch.py [--threads 1 2] [--repetitions 7]

The step, identical to Sources/lethe/BlockStep.swift: one post-LN BERT encoder layer of
all-MiniLM-L6-v2's size (hidden 384, 12 heads, FFN 1536, GELU erf, LayerNorm eps 1e-12) with
frozen base weights, LoRA rank 8 (alpha 16, no dropout) on query, key, value, attention output,
intermediate and output; B·T = 16·128 = 2048 tokens, no padding; loss = Σ y·w for a fixed w;
backward (no input gradient); clip_grad_norm_(1.0); AdamW(lr 1e-4, weight decay 0.01).
Attention uses F.scaled_dot_product_attention, PyTorch's fastest CPU path.
Reports the median wall time and process CPU time (all threads) over the repetitions after two
warm-up steps; on an oversubscribed machine the CPU time of a 1-thread run is the steadier figure.
"""
import argparse
import json
import math
import os
import subprocess
import statistics
import time

import torch
import torch.nn.functional as F


class LoRALinear(torch.nn.Module):
    """Frozen nn.Linear plus scale·B·A (PEFT orientation: lora_A [r, in], lora_B [out, r])."""

    def __init__(self, d_in, d_out, rank, alpha):
        super().__init__()
        self.base = torch.nn.Linear(d_in, d_out)
        self.base.requires_grad_(False)
        self.lora_A = torch.nn.Parameter(torch.empty(rank, d_in).uniform_(-1 / math.sqrt(d_in), 1 / math.sqrt(d_in)))
        # Non-zero B so the step does the same work as a mid-training step.
        self.lora_B = torch.nn.Parameter(torch.randn(d_out, rank) * 1e-3)
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.lora_A.t()) @ self.lora_B.t()


class Block(torch.nn.Module):
    def __init__(self, c=384, heads=12, ffn=1536, rank=8, alpha=16):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (LoRALinear(c, c, rank, alpha) for _ in range(4))
        self.inter = LoRALinear(c, ffn, rank, alpha)
        self.out = LoRALinear(ffn, c, rank, alpha)
        self.ln1 = torch.nn.LayerNorm(c, eps=1e-12)
        self.ln2 = torch.nn.LayerNorm(c, eps=1e-12)
        self.ln1.requires_grad_(False)
        self.ln2.requires_grad_(False)

    def forward(self, x):
        b, t, c = x.shape
        d = c // self.heads

        def split(z):
            return z.view(b, t, self.heads, d).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        h = self.ln1(self.o(ctx.transpose(1, 2).reshape(b, t, c)) + x)
        return self.ln2(self.out(F.gelu(self.inter(h))) + h)


def time_step(threads, repetitions):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    block = Block()
    x = torch.randn(16, 128, 384)
    w = torch.randn(16, 128, 384) * 1e-3
    params = [p for p in block.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = (block(x) * w).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(2):
        step()
    times, cpu = [], []
    for _ in range(repetitions):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times) * 1e3, statistics.median(cpu) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repetitions", type=int, default=7)
    ap.add_argument("--lethe", help="also run PATH bench kernels --json at each thread count, just before PyTorch, "
                                    "and print the ratio and the ceiling the FMA peak allows")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, BLAS: {'MKL' if torch.backends.mkl.is_available() else 'other'}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}")
    for n in args.threads:
        ours = None
        if args.lethe:
            env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
            done = subprocess.run([os.path.abspath(args.lethe), "bench", "kernels", "--threads", str(n),
                                   "--repetitions", str(args.repetitions), "--json"],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{args.lethe} bench kernels failed ({done.returncode}): {done.stderr.strip()}")
            ours = json.loads(done.stdout)
        ms, cpu_ms = time_step(n, args.repetitions)
        print(f"threads {n}: block step {ms:.2f} ms, CPU time {cpu_ms:.2f} ms (medians of {args.repetitions})")
        if ours:
            gflop, floor = ours["block_step_gflop"], ours["block_step_floor_milliseconds"]
            print(f"  lethe ({ours['core_name']}): {ours['block_step_milliseconds']:.2f} ms = "
                  f"{ms / ours['block_step_milliseconds']:.2f}× PyTorch's speed; PyTorch at "
                  f"{gflop / (ms / 1e3):.1f} GFLOP/s, ours at {ours['block_step_gflops']:.1f} of a "
                  f"{ours['peak_gflops']:.1f} GFLOP/s FMA peak")
            print(f"  ceiling: the step's {gflop:.2f} GFLOP take at least {floor:.2f} ms at the peak, so no "
                  f"implementation here can beat PyTorch's {ms:.2f} ms by more than {ms / floor:.2f}×")


if __name__ == "__main__":
    main()
