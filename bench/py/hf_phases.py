#!/usr/bin/env python3
"""Per-phase companion of shared/perf/hf_lora_bench.py (same model, batch, optimizer; imported from it).

  lora_step | full_step : the same step as hf_lora_bench.py, each phase timed (forward+loss, backward,
                          optimizer = step + zero_grad(set_to_none)); adds forward_s / backward_s / optimizer_s medians.
  adamw_step            : torch.optim.AdamW(lr=2e-4) over every parameter of the random-init OPT-125m, fixed random
                          gradients N(0, 1e-3), one opt.step() timed (mirrors Peft.Benchmarks adamw_step).

Same command line as hf_lora_bench.py (case --threads --iters --warmup --batch --seq --seed); one JSON line.
"""
import argparse, os, resource, statistics, sys, time

sys.path.insert(0, os.environ.get("HF_PERF_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "perf")))
import hf_lora_bench as hb  # noqa: E402


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)


def med(xs):
    return round(statistics.median(xs), 6)


def train_phases(args, lora):
    torch = hb.setup_torch(args)
    model = hb.build_model(args)
    if lora:
        from peft import LoraConfig, TaskType, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                 lora_dropout=0.0, task_type=TaskType.CAUSAL_LM))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    ids = hb.random_batch(args, hb.OPT125M["vocab_size"])
    fwd, bwd, opt_t, rss, faults = [], [], [], [], []

    def step():
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids, use_cache=False)
        t1 = time.perf_counter()
        out.loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        fwd.append(t1 - t0); bwd.append(t2 - t1); opt_t.append(t3 - t2)
        out.loss.item()
        del out
        rss.append(rss_mb())
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)

    ts = hb.timeit(step, args.warmup, args.iters)
    w = args.warmup
    s = statistics.median(ts)
    T = args.batch * args.seq
    hb.emit(dict(case="lora_step" if lora else "full_step", batch=args.batch, seq=args.seq, **hb.stats(ts),
                 s_per_step=round(s, 6), tok_per_s=round(T / s, 1), forward_s=med(fwd[w:]), backward_s=med(bwd[w:]),
                 optimizer_s=med(opt_t[w:]), rss_after_step_mb=rss, step_minflt=statistics.median(faults[w:]),
                 peak_rss_mb=hb.peak_rss_mb()))


def adamw_step(args):
    torch = hb.setup_torch(args)
    model = hb.build_model(args)
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(args.seed + 3)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    opt = torch.optim.AdamW(params, lr=2e-4)
    ts = hb.timeit(opt.step, args.warmup, args.iters)
    s = statistics.median(ts)
    hb.emit(dict(case="adamw_step", **hb.stats(ts), s_per_step=round(s, 6), steps_per_s=round(1 / s, 3),
                 params=sum(p.numel() for p in params), tensors=len(params), peak_rss_mb=hb.peak_rss_mb()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=["lora_step", "full_step", "adamw_step"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--attn", default="default")
    args = ap.parse_args()
    if args.case == "adamw_step":
        adamw_step(args)
    else:
        train_phases(args, args.case == "lora_step")


if __name__ == "__main__":
    main()
