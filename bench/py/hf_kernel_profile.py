#!/usr/bin/env python3
"""Where the GPU time of one HF training step goes: device busy time (kernels, copies, memsets; not user-annotation ranges such as `Optimizer.step`) vs wall time, kernel launches per step and the top
kernels, for hf_gpu_bench.py's lora_step (PEFT's default float32 adapters), the same with bfloat16 adapters
(autocast_adapter_dtype=False) and full_step. Answers whether the eager LoRA step's deficit against the full step is
host time (wall > device busy) or device time (more kernel time). torch.profiler, CUDA activity; one JSON line per case.
usage: hf_kernel_profile.py {opt125m|llama1b} [--batch B --seq T --steps N --top K]"""
import argparse, json, time, torch
from collections import defaultdict
from transformers import OPTConfig, OPTForCausalLM, LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model
from torch.profiler import profile, ProfilerActivity

p = argparse.ArgumentParser(); p.add_argument("model")
p.add_argument("--batch", type=int, default=8); p.add_argument("--seq", type=int, default=512)
p.add_argument("--steps", type=int, default=5); p.add_argument("--top", type=int, default=10)
a = p.parse_args()


def build(case):
    torch.manual_seed(0)
    if a.model == "opt125m":
        m = OPTForCausalLM(OPTConfig(vocab_size=50272, hidden_size=768, num_hidden_layers=12, ffn_dim=3072, num_attention_heads=12,
                                     max_position_embeddings=2048, word_embed_proj_dim=768, dropout=0.0))
    else:
        m = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096))
    m = m.to("cuda", dtype=torch.bfloat16)
    if case != "full_step":
        m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"),
                           autocast_adapter_dtype=(case == "lora_step"))
    return m


for case in ("lora_step", "lora_bf16_adapters", "full_step"):
    m = build(case); m.train()
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
