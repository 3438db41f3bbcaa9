#!/usr/bin/env python3
"""Host cost per call of single ops and of one LoRA layer (mirrors `Peft.Benchmarks host_cost`; same shapes and ops).
Tensors are tiny, so each case's time per call (repeats x 200 calls, one sync at the end) is the stack's host cost.

usage: host_cost.py [--device cpu|cuda] [--repeats 20]   -> one JSON line, microseconds per call (medians)
"""
import argparse, json, statistics, time

import torch
from peft import LoraConfig, get_peft_model

p = argparse.ArgumentParser(); p.add_argument("--device", default="cpu"); p.add_argument("--repeats", type=int, default=20)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
dev, bf16, W, CALLS = a.device, torch.bfloat16, 64, 200
torch.manual_seed(0)
x1, x2 = torch.randn(4, W, dtype=bf16, device=dev), torch.randn(4, W, dtype=bf16, device=dev)
g1 = torch.randn(4, W, dtype=bf16, device=dev).requires_grad_(True)
g2 = torch.randn(4, W, dtype=bf16, device=dev).requires_grad_(True)
x = torch.randn(2, 8, W, dtype=bf16, device=dev).requires_grad_(True)
lin = torch.nn.Linear(W, W, dtype=bf16, device=dev)
net = torch.nn.Sequential()
net.add_module("q_proj", torch.nn.Linear(W, W, dtype=bf16, device=dev))
pm = get_peft_model(net, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj"]))
layer = pm.base_model.model.q_proj
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
cases = {
    "add": lambda: x1.add(x2),
    "add_grad": lambda: g1.add(g2),
    "linear_fwd_bwd": lambda: lin(x).sum().backward(),
    "base_fwd_bwd": lambda: layer.base_layer(x).sum().backward(),
    "lora_fwd_bwd": lambda: layer(x).sum().backward(),
    "base_fwd": lambda: layer.base_layer(x),
    "lora_fwd": lambda: layer(x),
}
row = {"case": "host_cost", "side": "py", "device": dev, "calls_per_repeat": CALLS, "width": W, "torch": torch.__version__}
for name, call in cases.items():
    for _ in range(50):
        call()
    sync()
    us = []
    for _ in range(max(3, a.repeats)):
        t = time.perf_counter()
        for _ in range(CALLS):
            call()
        sync()
        us.append((time.perf_counter() - t) * 1e6 / CALLS)
    row[name + "_us"] = round(statistics.median(us), 2)
print(json.dumps(row))
