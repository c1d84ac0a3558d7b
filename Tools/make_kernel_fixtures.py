#!/usr/bin/env python3
"""Reference values for the Kernels forward passes (Tests/KernelsTests/Fixtures/kernels.json).

Environment: python3 with numpy (system-wide numpy 2.4 on the Lethe machines; nothing else).
Regenerate:  python3 Tools/make_kernel_fixtures.py > Tests/KernelsTests/Fixtures/kernels.json
Inputs are drawn from numpy's PCG64 with seed 20261122, rounded to float32; references are
computed in float64 from those float32 inputs with textbook formulas (math.erf for GELU), so
the Swift kernels are checked against independent math, not against themselves.
"""
import json
import math
import sys

import numpy as np

rng = np.random.default_rng(20261122)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def rand(*shape, scale=1.0):
    return f32(rng.standard_normal(shape) * scale)


def t(a):
    a = np.asarray(a)
    return {"shape": list(a.shape), "data": [float(v) for v in a.astype(np.float32).ravel()]}


def ints(a):
    a = np.asarray(a)
    return {"shape": list(a.shape), "data": [int(v) for v in a.ravel()]}


cases = {}

# matmul: C = A·B, with A and B also stored transposed.
a, b = rand(3, 4), rand(4, 5)
cases["matmul"] = {"a": t(a), "b": t(b), "aT": t(a.T), "bT": t(b.T), "c": t(a @ b)}

# LoRA linear: y = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ (PEFT lora_A [r, in], lora_B [out, r]).
x, w, bias = rand(5, 6), rand(4, 6), rand(4)
la, lb, s = rand(2, 6), rand(4, 2), 2.0
cases["lora_linear"] = {"x": t(x), "weight": t(w), "bias": t(bias), "loraA": t(la), "loraB": t(lb),
                        "scale": s, "y": t(x @ w.T + bias + s * (x @ la.T) @ lb.T)}

# LayerNorm (biased variance, eps inside the root).
x, g, bb = rand(4, 10, scale=3.0) + 1.5, rand(10), rand(10)
mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
cases["layernorm"] = {"x": t(x), "gamma": t(g), "beta": t(bb), "eps": 1e-5,
                      "y": t((x - mu) / np.sqrt(var + 1e-5) * g + bb)}

# RMSNorm.
x, g = rand(4, 10, scale=2.0), rand(10)
cases["rmsnorm"] = {"x": t(x), "gamma": t(g), "eps": 1e-5,
                    "y": t(x / np.sqrt((x * x).mean(1, keepdims=True) + 1e-5) * g)}

# GELU (erf), SiLU, SwiGLU over a wide range, 37 values (tail handling).
x = f32(np.concatenate([np.linspace(-9, 9, 25), rng.standard_normal(12) * 2]))
cases["gelu"] = {"x": t(x), "y": t([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])}
sig = 1 / (1 + np.exp(-x))
cases["silu"] = {"x": t(x), "y": t(x * sig)}
u = rand(37)
cases["swiglu"] = {"gate": t(x), "up": t(u), "y": t(x * sig * u)}

# Softmax per row, 13 columns.
x = rand(3, 13, scale=4.0)
e = np.exp(x - x.max(1, keepdims=True))
cases["softmax"] = {"x": t(x), "y": t(e / e.sum(1, keepdims=True))}


def attention(q, k, v, mask, B, T, H, Hkv, D, causal):
    out = np.zeros((B * T, H * D))
    for b in range(B):
        for h in range(H):
            g = h // (H // Hkv)
            qh = q[b * T:(b + 1) * T, h * D:(h + 1) * D]
            kg = k[b * T:(b + 1) * T, g * D:(g + 1) * D]
            vg = v[b * T:(b + 1) * T, g * D:(g + 1) * D]
            s = qh @ kg.T / math.sqrt(D)
            vis = np.ones((T, T), bool) & (mask[b * T:(b + 1) * T] != 0)[None, :]
            if causal:
                vis &= np.tril(np.ones((T, T), bool))
            s = np.where(vis, s, -np.inf)
            p = np.zeros_like(s)
            for i in range(T):
                if vis[i].any():
                    ee = np.exp(s[i] - s[i][vis[i]].max())
                    p[i] = np.where(vis[i], ee, 0) / ee[vis[i]].sum()
            out[b * T:(b + 1) * T, h * D:(h + 1) * D] = p @ vg
    return out


# Attention: B=2 sequences of T=5, H=4 query heads over Hkv=2 kv heads, D=3; the second
# sequence has two padding tokens.
B, T, H, Hkv, D = 2, 5, 4, 2, 3
q, k, v = rand(B * T, H * D), rand(B * T, Hkv * D), rand(B * T, Hkv * D)
mask = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
cases["attention"] = {"q": t(q), "k": t(k), "v": t(v), "mask": ints(mask),
                      "dims": [B, T, H, Hkv, D],
                      "out": t(attention(q, k, v, mask, B, T, H, Hkv, D, False)),
                      "outCausal": t(attention(q, k, v, mask, B, T, H, Hkv, D, True))}

# RoPE, adjacent pairs, base 10000; 2 sequences of 3 tokens, 2 heads of size 4.
B, T, H, D, base = 2, 3, 2, 4, 10000.0
x = rand(B * T, H * D)
y = x.copy()
for r in range(B * T):
    pos = r % T
    for h in range(H):
        for i in range(D // 2):
            th = pos * base ** (-2 * i / D)
            a0, a1 = x[r, h * D + 2 * i], x[r, h * D + 2 * i + 1]
            y[r, h * D + 2 * i] = a0 * math.cos(th) - a1 * math.sin(th)
            y[r, h * D + 2 * i + 1] = a0 * math.sin(th) + a1 * math.cos(th)
cases["rope"] = {"x": t(x), "dims": [B, T, H, D], "base": base, "y": t(y)}

# Mean pooling over a mask.
x = rand(2 * 3, 4)
mask = np.array([1, 1, 0, 1, 0, 0])
y = np.stack([x[0:2].mean(0), x[3:4].mean(0)])
cases["mean_pooling"] = {"x": t(x), "mask": ints(mask), "y": t(y)}

# Cross-entropy with ignore index -100.
z = rand(5, 7, scale=3.0)
tg = np.array([3, -100, 0, 6, 2])
lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
cnt = [i for i in range(5) if tg[i] != -100]
cases["cross_entropy"] = {"logits": t(z), "targets": ints(tg),
                          "loss": float(np.mean([lse[i] - z[i, tg[i]] for i in cnt]))}

# AdamW, three steps with clipping (global norm over two tensors), torch.optim.AdamW order.
p1, p2 = rand(6), rand(3)
grads = [(rand(6), rand(3)) for _ in range(3)]
lr, b1, b2, eps, wd, maxn = 1e-2, 0.9, 0.999, 1e-8, 0.1, 0.5
m = [np.zeros(6), np.zeros(3)]
vv = [np.zeros(6), np.zeros(3)]
ps = [p1.copy(), p2.copy()]
for step, gs in enumerate(grads, start=1):
    norm = math.sqrt(sum((g * g).sum() for g in gs))
    c = min(1.0, maxn / (norm + 1e-6))
    for i in range(2):
        g = gs[i] * c
        ps[i] = ps[i] * (1 - lr * wd)
        m[i] = b1 * m[i] + (1 - b1) * g
        vv[i] = b2 * vv[i] + (1 - b2) * g * g
        denom = np.sqrt(vv[i]) / math.sqrt(1 - b2 ** step) + eps
        ps[i] = ps[i] - lr / (1 - b1 ** step) * m[i] / denom
cases["adamw"] = {"p1": t(p1), "p2": t(p2),
                  "grads": [[t(g1), t(g2)] for g1, g2 in grads],
                  "config": [lr, b1, b2, eps, wd, maxn], "p1After": t(ps[0]), "p2After": t(ps[1])}

json.dump({"generator": "Tools/make_kernel_fixtures.py (numpy %s, seed 20261122)" % np.__version__,
           "cases": cases}, sys.stdout, indent=None)
sys.stdout.write("\n")
