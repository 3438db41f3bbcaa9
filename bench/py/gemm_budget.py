#!/usr/bin/env python3
"""gemm_budget: the BLAS work of one hf_lora_bench.py lora_step alone (OPT-125m, fp32, frozen base weights): every
linear's forward as F.linear(x, W, b) (= addmm), the tied LM head as F.linear(x, E), and the backward's grad-input products
grad @ W. Mirrors bench/Peft.Benchmarks/HfMirror/GemmBudgetBenchmark.cs call for call (same shapes, same order).
usage: gemm_budget.py gemm_budget [--threads 2 --batch 8 --seq 128 --iters 5 --warmup 3]  -> one JSON line"""
import argparse, json, resource, statistics, time
import torch

p = argparse.ArgumentParser()
p.add_argument("case", choices=["gemm_budget"])
p.add_argument("--threads", type=int, default=2); p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=128); p.add_argument("--iters", type=int, default=5)
p.add_argument("--warmup", type=int, default=3); p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(a.seed)
h, ffn, vocab, layers = 768, 3072, 50272, 12
n = a.batch * a.seq
x, xf, gv = torch.randn(n, h), torch.randn(n, ffn), torch.randn(n, vocab)
wq, w1, w2, emb = torch.randn(h, h), torch.randn(ffn, h), torch.randn(h, ffn), torch.randn(vocab, h)
bh, bf = torch.randn(h), torch.randn(ffn)

def forward():
    for _ in range(layers):
        for _ in range(4): torch.nn.functional.linear(x, wq, bh)
        torch.nn.functional.linear(x, w1, bf); torch.nn.functional.linear(xf, w2, bh)
    torch.nn.functional.linear(x, emb)

def backward():
    for _ in range(layers):
        for _ in range(4): torch.mm(x, wq)
        torch.mm(x, w2); torch.mm(xf, w1)
    torch.mm(gv, emb)

def timeit(fn):
    for _ in range(a.warmup): fn()
    ts = []
    for _ in range(a.iters):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return ts

tf, tb = timeit(forward), timeit(backward)
macs = layers * (4 * h * h + 2 * h * ffn) * n + h * vocab * n
print(json.dumps({"case": "gemm_budget", "tokens": n, "forward_gemm_s": round(statistics.median(tf), 6),
                  "backward_gemm_s": round(statistics.median(tb), 6),
                  "tok_per_s": round(n / statistics.median([f + b for f, b in zip(tf, tb)]), 1),
                  "gflops": round(2 * macs / statistics.median(tf) / 1e9, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
                  "torch": torch.__version__, "blas": "OpenBLAS (Debian, OpenMP)"}))
