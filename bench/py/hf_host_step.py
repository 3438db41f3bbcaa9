#!/usr/bin/env python3
"""Host cost per training step: OPT-125m's graph (12 layers, 12 heads, tied head) at tiny widths (hidden 48, ffn 96,
vocab 512), so the kernels cost next to nothing and a step's time is the stack's per-op host cost, the regime of the
eager OPT-125m step on a GPU. Mirrors `Peft.Benchmarks lora_step|full_step --model opt_tiny` (same config, random
ids in [3, vocab), LoRA r=8 alpha=16 on q_proj/v_proj with PEFT's float32 adapters, AdamW lr 2e-4, zero_grad(set_to_none)).

usage: hf_host_step.py {lora_step|full_step} [--device cpu|cuda --dtype bf16|fp32 --batch 1 --seq 16 --iters 50 --warmup 5 --threads 1]
One JSON line: median / min seconds per step, tok_per_s.
"""
import argparse, json, statistics, time

import torch
from transformers import OPTConfig, OPTForCausalLM

p = argparse.ArgumentParser()
p.add_argument("case", choices=["lora_step", "full_step"])
p.add_argument("--device", default="cpu"); p.add_argument("--dtype", default="bf16"); p.add_argument("--batch", type=int, default=1); p.add_argument("--seq", type=int, default=16)
p.add_argument("--iters", type=int, default=50); p.add_argument("--warmup", type=int, default=5); p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = OPTForCausalLM(OPTConfig(vocab_size=512, hidden_size=48, num_hidden_layers=12, ffn_dim=96, num_attention_heads=12,
                             max_position_embeddings=2048, word_embed_proj_dim=48, dropout=0.0))
m = m.to(a.device, dtype=torch.bfloat16 if a.dtype == "bf16" else torch.float32)
sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
if a.case == "lora_step":
    from peft import LoraConfig, get_peft_model
    m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"))
m.train()
params = [q for q in m.parameters() if q.requires_grad]
opt = torch.optim.AdamW(params, lr=2e-4)
g = torch.Generator().manual_seed(1)
ids = torch.randint(3, 512, (a.batch, a.seq), generator=g).to(a.device)


def step():
    loss = m(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


for _ in range(a.warmup):
    step()
sync()
ts = []
for _ in range(a.iters):
    t = time.perf_counter(); step(); sync(); ts.append(time.perf_counter() - t)
s = statistics.median(ts)
print(json.dumps({"case": a.case, "side": "py", "model": "opt_tiny", "device": a.device, "dtype": a.dtype, "s_per_step": s, "min_s": min(ts),
                  "tok_per_s": a.batch * a.seq / s, "iters": a.iters, "torch": torch.__version__}))
