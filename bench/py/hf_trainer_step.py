#!/usr/bin/env python3
"""HF Trainer step time: the mirror's step (shared/perf/hf_gpu_bench.py's models; hf_lora_bench.py's OPT-125m on the
CPU) through transformers' Trainer, as `Peft.Benchmarks trainer_lora|trainer_full` runs Peft.NET's Trainer: random-init
model (bf16 on CUDA, fp32 on the CPU), LoRA r8 alpha16 on q_proj/v_proj (PEFT's float32 adapters) or every parameter,
optim adamw_torch, lr 2e-4, the default linear schedule and max_grad_norm 1, batch 8 of random rows (labels = ids),
warm-up + timed steps, no saving, one log at the end. A callback syncs the device at every step end and takes the
time; the median of the timed steps' intervals is the step time.

usage: hf_trainer_step.py {opt125m|llama1b} {lora|full} [--device cuda|cpu --batch 8 --seq 512|128 --iters 10 --warmup 3]
One JSON line.
"""
import argparse, json, resource, statistics, tempfile, time

import torch
from gpu_models import build
from transformers import (Trainer, TrainerCallback,
                          TrainingArguments, default_data_collator)

p = argparse.ArgumentParser()
p.add_argument("model", choices=["opt125m", "llama1b"]); p.add_argument("method", choices=["lora", "full"])
p.add_argument("--device", default="cuda"); p.add_argument("--batch", type=int, default=8); p.add_argument("--seq", type=int, default=0)
p.add_argument("--iters", type=int, default=10); p.add_argument("--warmup", type=int, default=3); p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
cuda = a.device == "cuda"
seq = a.seq or (512 if cuda else 128)
torch.manual_seed(0)
m = build(a.model, a.device, torch.bfloat16 if cuda else torch.float32, dropout=0.0 if cuda else 0.1)
vocab = m.config.vocab_size
if a.method == "lora":
    from peft import LoraConfig, get_peft_model
    m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"))
steps = a.warmup + a.iters + 1
g = torch.Generator().manual_seed(1)
ids = torch.randint(3, vocab, (steps * a.batch, seq), generator=g)
rows = [{"input_ids": r, "labels": r.clone()} for r in ids]
sync = torch.cuda.synchronize if cuda else (lambda: None)


class Clock(TrainerCallback):
    def __init__(self):
        self.t0, self.ends = time.perf_counter(), []

    def on_step_end(self, args, state, control, **kwargs):
        sync()
        self.ends.append(time.perf_counter() - self.t0)


clock = Clock()
with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=a.batch, learning_rate=2e-4,
                             optim="adamw_torch", logging_steps=steps, save_strategy="no", report_to=[], disable_tqdm=True,
                             dataloader_num_workers=0, seed=0, use_cpu=not cuda)
    trainer = Trainer(model=m, args=args, train_dataset=rows, data_collator=default_data_collator, callbacks=[clock])
    trainer.train()
intervals = [b - x for x, b in zip(clock.ends, clock.ends[1:])][a.warmup:]
s = statistics.median(intervals)
losses = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
print(json.dumps({"case": f"trainer_{a.method}", "model": a.model, "device": a.device, "batch": a.batch, "seq": seq,
                  "steps": steps, "s_per_step": s, "tok_per_s": a.batch * seq / s, "all_s": [round(x, 4) for x in intervals],
                  "loss_logged": losses, "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
                  "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}))
