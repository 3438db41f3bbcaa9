#!/usr/bin/env python3
"""Device memory per phase of hf_gpu_bench.py's lora_step / full_step (same model, batch, optimizer and loop), the
Python twin of the C# bench's PEFT_MEM_TRACE=1: after each phase (synced) one stderr line `mem PHASE: N MiB` with the
driver's used memory (total - free: context + the caching allocator's reserve, as the C# side reads it), plus torch's
allocated / reserved / peak-allocated-since-the-last-phase counters. stdout: one JSON line with the per-phase peaks.
usage: hf_mem_trace.py {opt125m|llama1b} {lora_step|full_step} [--batch B --seq T --steps N]"""
import argparse, json, sys, torch
from gpu_models import build
from peft import LoraConfig, get_peft_model

p = argparse.ArgumentParser(); p.add_argument("model"); p.add_argument("case")
p.add_argument("--batch", type=int, default=8); p.add_argument("--seq", type=int, default=512); p.add_argument("--steps", type=int, default=3)
a = p.parse_args()
torch.manual_seed(0); dev = "cuda"
m = build(a.model, dev)
ids = torch.randint(0, 32000, (a.batch, a.seq), device=dev)
if a.case == "lora_step":
    m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"))
params = [q for q in m.parameters() if q.requires_grad]
opt = torch.optim.AdamW(params, lr=2e-4)
m.train()
MiB = 2 ** 20
rows = []
def trace(phase):
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    row = {"phase": phase, "used_mib": (total - free) // MiB, "allocated_mib": torch.cuda.memory_allocated() // MiB,
           "reserved_mib": torch.cuda.memory_reserved() // MiB, "peak_allocated_mib": torch.cuda.max_memory_allocated() // MiB}
    print(f"mem {phase}: {row['used_mib']} MiB (allocated {row['allocated_mib']}, reserved {row['reserved_mib']}, "
          f"peak allocated in phase {row['peak_allocated_mib']})", file=sys.stderr)
    rows.append(row)
    torch.cuda.reset_peak_memory_stats()
trace("start")
for i in range(1, a.steps + 1):
    loss = m(input_ids=ids, labels=ids).loss; trace(f"step {i} forward")
    loss.backward(); trace(f"step {i} backward")
    opt.step(); trace(f"step {i} optimizer step")
    opt.zero_grad(set_to_none=True); del loss; trace(f"step {i} end")
print(json.dumps({"model": a.model, "case": a.case, "batch": a.batch, "seq": a.seq, "phases": rows}))
