#!/usr/bin/env python3
"""Where the GPU time of one HF training step goes: device busy time (kernels, copies, memsets; not user-annotation
ranges such as `Optimizer.step`) vs wall time, kernel launches per step and the top kernels, for hf_gpu_bench.py's
lora_step (PEFT's default float32 adapters), the same with bfloat16 adapters (autocast_adapter_dtype=False) and
full_step. Answers whether the eager LoRA step's deficit against the full step is host time (wall > device busy) or
device time (more kernel time). torch.profiler, CUDA activity; one JSON line per case.
usage: hf_kernel_profile.py {opt125m|llama1b} [--batch B --seq T --steps N --top K]"""
import argparse, json, time, torch
from collections import defaultdict
from gpu_models import build
from peft import LoraConfig, get_peft_model
from torch.profiler import profile, ProfilerActivity

p = argparse.ArgumentParser(); p.add_argument("model")
p.add_argument("--batch", type=int, default=8); p.add_argument("--seq", type=int, default=512)
p.add_argument("--steps", type=int, default=5); p.add_argument("--top", type=int, default=10)
a = p.parse_args()


def model_for(case):
    torch.manual_seed(0)
    m = build(a.model)
    if case != "full_step":
        m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"),
                           autocast_adapter_dtype=(case == "lora_step"))
    return m


for case in ("lora_step", "lora_bf16_adapters", "full_step"):
    m = model_for(case); m.train()
    opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad], lr=2e-4)
    ids = torch.randint(0, 32000, (a.batch, a.seq), device="cuda")

    def step():
        m(input_ids=ids, labels=ids).loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)

    for _ in range(3): step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(a.steps): step()
    torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - t) * 1e3 / a.steps
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(a.steps): step()
        torch.cuda.synchronize()
    kernels, launches, busy_us = defaultdict(lambda: [0.0, 0]), 0, 0.0
    for e in prof.events():
        dev = str(getattr(e, "device_type", ""))
        if dev.endswith("CUDA") and not getattr(e, "is_user_annotation", False) and not e.name.startswith("Optimizer."):
            us = e.time_range.elapsed_us()
            kernels[e.name][0] += us; kernels[e.name][1] += 1; busy_us += us
        elif e.name in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx"):
            launches += 1
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[: a.top]
    print(json.dumps({"model": a.model, "case": case, "wall_ms": round(wall_ms, 3),
                      "device_busy_ms": round(busy_us / 1e3 / a.steps, 3), "kernels_per_step": sum(v[1] for v in kernels.values()) / a.steps,
                      "launch_calls_per_step": launches / a.steps,
                      "top": [{"kernel": k[:90], "us_per_step": round(v[0] / a.steps, 1), "calls_per_step": v[1] / a.steps} for k, v in top]}))
    del m, opt; torch.cuda.empty_cache()
