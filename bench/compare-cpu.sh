#!/usr/bin/env bash
# Same-run CPU comparison: alternates the C# case and the Python case (shared/perf/hf_lora_bench.py), ROUNDS times,
# each case in its own process (peak RSS per case), then writes the medians and the C#/Python ratios.
#   bench/compare-cpu.sh [CASES...]      default: lora_step full_step forward generate merged_forward
# Env: ROUNDS (3), ITERS (timed iterations per process, 5), WARMUP (3), THREADS (2),
#      PY (default ~/.cache/peft-baseline/venv/bin/python, installed by shared/perf/setup-python-baseline.sh),
#      HF_BENCH (default ../shared/perf/hf_lora_bench.py), OUT (default bench/results/cpu-<utc>.jsonl),
#      (case gemm_budget: the Python side is bench/py/gemm_budget.py, the step's GEMMs alone)
#      EXTRA (more arguments for both sides, e.g. "--batch 2 --seq 32" for a smoke run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3} ITERS=${ITERS:-5} WARMUP=${WARMUP:-3} THREADS=${THREADS:-2} EXTRA=${EXTRA:-}
PY=${PY:-$HOME/.cache/peft-baseline/venv/bin/python}
HF_BENCH=${HF_BENCH:-$ROOT/../shared/perf/hf_lora_bench.py}
CASES=${*:-lora_step full_step forward generate merged_forward}
mkdir -p "$ROOT/bench/results"
OUT=${OUT:-$ROOT/bench/results/cpu-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
dotnet build -c Release "$ROOT/bench/Peft.Benchmarks" -v q -nologo >&2
DLL=$(ls "$ROOT"/bench/Peft.Benchmarks/bin/Release/net*/Peft.Benchmarks.dll | head -1)
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) | load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    # C# first in odd rounds, Python first in even rounds (drift in the machine's load hits both sides alike)
    order="cs py"; [ $((r % 2)) = 0 ] && order="py cs"
    for side in $order; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      if [ "$side" = cs ]; then
        line=$(dotnet "$DLL" "$c" --threads "$THREADS" --repeats "$ITERS" --warmup "$WARMUP" $EXTRA 2>/dev/null | grep '"case"' | tail -1)
      else
        hf=$HF_BENCH; [ "$c" = gemm_budget ] && hf=$ROOT/bench/py/gemm_budget.py   # the BLAS-only mirror
        line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" "$hf" "$c" --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" $EXTRA 2>/dev/null | tail -1)
      fi
      [ -n "$line" ] || { echo "# $side $c round $r: no result" >&2; continue; }
      echo "{\"side\":\"$side\",\"round\":$r,\"load1\":$load,\"result\":$line}" | tee -a "$OUT"
    done
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def tok(r):
    d = r["result"]
    if d.get("case") == "merged_forward" and "tok_per_s" not in d:   # the Python side reports times only
        return d["batch"] * d["seq"] / d["merged_s"]
    return d["tok_per_s"] if "tok_per_s" in d else d["steps_per_s"]   # adamw_step: optimizer steps/s
print(f"\n| case | Python tok/s (adamw_step: steps/s) | C# tok/s | ratio C#/Py | peak RSS C# / Py (MB) | rounds | median load |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for c in dict.fromkeys(r["result"]["case"] for r in rows):
    s = {side: [r for r in rows if r["side"] == side and r["result"]["case"] == c] for side in ("cs", "py")}
    if not s["cs"] or not s["py"]: continue
    med = {k: statistics.median(tok(r) for r in v) for k, v in s.items()}
    rss = {k: statistics.median(r["result"]["peak_rss_mb"] for r in v) for k, v in s.items()}
    load = statistics.median(r["load1"] for r in s["cs"] + s["py"])
    print(f"| {c} | {med['py']:.1f} | {med['cs']:.1f} | {med['cs']/med['py']:.2f}× | {rss['cs']:.0f} / {rss['py']:.0f} | {min(len(s['cs']), len(s['py']))} | {load:.1f} |")
PY
echo "# results: $OUT" >&2
