#!/usr/bin/env python3
"""RSS trace of shared/perf/hf_lora_bench.py's merged_forward case (same model, batch, LoRA; imported from it).

Prints VmRSS / VmHWM after each phase to stderr, in the format of Peft.Benchmarks' PEFT_RSS_TRACE=1, then the case's
JSON line. Same command line as hf_lora_bench.py (merged_forward --threads --iters --warmup --batch --seq --seed).
"""
import os, sys

sys.path.insert(0, os.environ.get("HF_PERF_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "perf")))
import hf_lora_bench as hb  # noqa: E402


def status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024.0, 1)


def trace(phase):
    print(f"rss {phase}: {status_mb('VmRSS')} MB, hwm {status_mb('VmHWM')} MB", file=sys.stderr, flush=True)


def main():
    # Wrap what the case goes through (module globals of hf_lora_bench, so case_merged_forward picks them up).
    orig_build, orig_timeit = hb.build_model, hb.timeit
    calls = {"timeit": 0}

    def build_model(a):
        m = orig_build(a)
        trace("model built")
        return m

    def timeit(fn, warmup, iters):
        calls["timeit"] += 1
        first = calls["timeit"] == 1
        trace("reference logits" if first else "merged logits")
        ts = orig_timeit(fn, warmup, iters)
        trace("unmerged timed" if first else "merged timed")
        return ts

    hb.build_model, hb.timeit = build_model, timeit
    from peft.tuners.lora import LoraModel
    orig_merge = LoraModel.merge_and_unload

    def merge_and_unload(self, *a, **k):
        r = orig_merge(self, *a, **k)
        trace("merged")
        return r

    LoraModel.merge_and_unload = merge_and_unload
    if sys.argv[1:2] != ["merged_forward"]:
        raise SystemExit("usage: hf_merged_trace.py merged_forward [hf_lora_bench.py options]")
    hb.main()


if __name__ == "__main__":
    main()
