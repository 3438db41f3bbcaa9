#!/usr/bin/env bash
# GPU same-run comparison (H200, bf16): HF transformers+PEFT (shared/perf/hf_gpu_bench.py) vs Peft.NET, alternating,
# opt125m and llama1b × lora_step / full_step / generate, then a ratio table.
#
#   bench/run-gpu.sh prepare      # on the dev machine: publish the app into .gpu/app (TorchRuntime=none),
#                                 # pack the .NET runtime, copy hf_gpu_bench.py into .gpu/ (docs: shared GPU.md)
#   bench/run-gpu.sh run          # on the GPU machine, in ONE device call with carry [".gpu"]
#   bench/run-gpu.sh load         # on the GPU machine (same carry): issue 13's loading checks — device_map_load
#                                 # (CPU spill, logits vs one GPU) and `load --device cuda` (host peak RSS, footprint,
#                                 # tok/s for OPT-125m / Llama-1B shapes in fp32 / bf16 / int8 / nf4)
#
#   bench/run-gpu.sh check        # on the GPU machine (same carry): train_graph_check (fp32, MODELS; DROPOUT=p turns
#                                 # on the model's and LoRA's dropout), trainer_graph_check (the Trainer with
#                                 # CudaGraphs, dropout 0.1; TRAINER_CHECK=0 skips it) and fused_check (FUSED_CHECK=0 skips it)
#
#   bench/run-gpu.sh mem          # on the GPU machine (same carry): device memory after each phase of MODELS × CASES
#                                 # (full_step lora_step): bench/py/hf_mem_trace.py, then the C# step with PEFT_MEM_TRACE=1;
#                                 # allocator settings (PYTORCH_CUDA_ALLOC_CONF, PYTORCH_NO_CUDA_MEMORY_CACHING) pass
#                                 # through to both sides
#   bench/run-gpu.sh cs NAME ...  # on the GPU machine (same carry): one C# benchmark with the packed runtime
#
#   bench/run-gpu.sh host         # on the GPU machine (same carry): host cost per call (host_cost, bench/py/host_cost.py) and
#                                 # per step of OPT-125m's graph at tiny widths (lora_step / full_step --model opt_tiny,
#                                 # bench/py/hf_host_step.py), both sides alternating, ROUNDS (2) rounds
#
# Env (run): ROUNDS (2), ITERS (5), BUDGET_S (400: no new round starts after this many seconds), MODELS, CASES,
# FIRST_ROUND (1; the round number decides which side goes first, so a second call can continue with round 2).
# A case named CASE_graphs (lora_step_graphs, full_step_graphs) runs only the C# side with --cuda-graphs; the
# table gives its ratio against the same round's Python CASE. trainer_lora / trainer_full (and their _graphs forms):
# the step through each side's Trainer (bench/py/hf_trainer_step.py against Peft.Benchmarks trainer_lora|trainer_full).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
G=$ROOT/.gpu

# On the GPU machine: the packed .NET runtime, the Python wheel's libtorch and LibTorchSharp from the app.
runtime() {
  dn=$(mktemp -d) && tar -xJf "$G/dotnet.tar.xz" -C "$dn"
  export DOTNET_ROOT=$dn PATH=$dn:$PATH
  export LD_LIBRARY_PATH=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib:${LD_LIBRARY_PATH:-}
  export LIBTORCHSHARP=$G/app/runtimes/linux-x64/native/libLibTorchSharp.so
}
# Device memory of one benchmark process, the same way for both sides: nvidia-smi samples the GPU's used memory every
# MEM_MS (20) ms in a process of its own (no thread, no GIL, no driver call inside either benchmark); the JSON row gets
# "device_mib_idle" (the last sample before the process) and "device_mib_peak" (the largest while it ran), both
# device-wide (CUDA context + the caching allocator's reserved blocks), where hf_gpu_bench.py's own "peak_mem_gb" is
# torch's max_memory_allocated (allocated tensors only; the C# side has no such counter: TorchSharp exposes none).
sampler_start() {
  MEM_LOG=$(mktemp)
  MEM_IDLE=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2>/dev/null | head -1 | tr -dc 0-9 || true)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms "${MEM_MS:-20}" >"$MEM_LOG" 2>/dev/null &
  MEM_PID=$!
}
sampler_stop() {
  kill "$MEM_PID" 2>/dev/null || true; wait "$MEM_PID" 2>/dev/null || true
  local peak; peak=$(tr -dc '0-9\n' <"$MEM_LOG" | sort -n | tail -1 || true)
  rm -f "$MEM_LOG"
  echo "\"device_mib_idle\":${MEM_IDLE:-null},\"device_mib_peak\":${peak:-null}"
}

case "${1:-}" in
prepare)
  rm -rf "$G/app" && mkdir -p "$G"
  dotnet publish "$ROOT/bench/Peft.Benchmarks" -c Release -p:TorchRuntime=none -o "$G/app" -v q -nologo
  rm -rf "$G"/app/runtimes/{osx*,win*}
  tar -cJf "$G/dotnet.tar.xz" -C /usr/share/dotnet dotnet host/fxr shared/Microsoft.NETCore.App
  cp "$ROOT/../shared/perf/hf_gpu_bench.py" "$G/hf_gpu_bench.py"
  du -sh "$G" ;;
load)
  runtime
  RES=/tmp; [ -d "${OUT:-}" ] && RES=$OUT
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader || true
  dotnet "$G/app/Peft.Benchmarks.dll" device_map_load --device cuda 2>"$RES/device-map-load.stderr.txt" | tee "$RES/device-map-load.jsonl"
  PEFT_LOAD_DIR=/tmp/peft-bench-load dotnet "$G/app/Peft.Benchmarks.dll" load --device cuda --repeats 5 2>"$RES/load-cuda.stderr.txt" | tee "$RES/load-cuda.jsonl"
  echo "# results: $RES/device-map-load.jsonl, $RES/load-cuda.jsonl (${SECONDS}s)" ;;
run)
  ROUNDS=${ROUNDS:-2} ITERS=${ITERS:-5} BUDGET_S=${BUDGET_S:-400}
  MODELS=${MODELS:-"opt125m llama1b"} CASES=${CASES:-"lora_step full_step generate"}
  runtime
  # the device machine's $OUT is a folder whose files come back; elsewhere /tmp
  RES=/tmp/gpu-results.jsonl; [ -d "${OUT:-}" ] && RES=$OUT/gpu-results.jsonl
  : > "$RES"; t0=$SECONDS
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  for r in $(seq "${FIRST_ROUND:-1}" "$((${FIRST_ROUND:-1} + ROUNDS - 1))"); do
    [ $((SECONDS - t0)) -lt "$BUDGET_S" ] || { echo "# budget reached before round $r"; break; }
    for m in $MODELS; do for c in $CASES; do
      order="py cs"; [ $((r % 2)) = 0 ] && order="cs py"
      w=3; [ "$c" = generate ] && w=2
      # CASE_graphs: the C# side only, with --cuda-graphs; its ratio is taken against the Python side of CASE
      base=${c%_graphs}; flags=""; [ "$base" != "$c" ] && { order="cs"; flags="--cuda-graphs"; }
      for side in $order; do
        sampler_start
        if [ "$side" = py ] && [ "${base#trainer_}" != "$base" ]; then
          line=$(python3 "$ROOT/bench/py/hf_trainer_step.py" "$m" "${base#trainer_}" --iters "$ITERS" 2>>"${RES%.jsonl}.stderr.txt" | tail -1)
        elif [ "$side" = py ]; then
          line=$(python3 "$G/hf_gpu_bench.py" "$m" "$c" --iters "$ITERS" 2>>"${RES%.jsonl}.stderr.txt" | tail -1)
        else
          line=$(dotnet "$G/app/Peft.Benchmarks.dll" "$base" $flags --device cuda --dtype bf16 --model "$m" --repeats "$ITERS" --warmup "$w" 2>>"${RES%.jsonl}.stderr.txt" | grep '"case"' | tail -1)
        fi
        mem=$(sampler_stop)
        [ -n "$line" ] || { echo "# $side $m $c round $r: no result"; continue; }
        echo "{\"side\":\"$side\",\"round\":$r,\"model\":\"$m\",\"label\":\"$c\",$mem,\"result\":$line}" | tee -a "$RES" | cut -c1-300
      done
    done; done
  done
  python3 - "$RES" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| model | case | HF Python tok/s | Peft.NET tok/s | ratio C#/Py | rounds | device MiB peak − idle, Py / C# (medians) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
label = lambda r: r.get("label", r["result"]["case"])
keys = dict.fromkeys((r["model"], label(r)) for r in rows)
for m, c in keys:
    base = c.removesuffix("_graphs")
    s = {"py": [r["result"]["tok_per_s"] for r in rows if r["side"] == "py" and r["model"] == m and label(r) == base],
         "cs": [r["result"]["tok_per_s"] for r in rows if r["side"] == "cs" and r["model"] == m and label(r) == c]}
    if s["py"] and s["cs"]:
        py, cs = statistics.median(s["py"]), statistics.median(s["cs"])
        mem = {k: [r["device_mib_peak"] - r["device_mib_idle"] for r in rows if r["side"] == k and r["model"] == m
                   and label(r) == (base if k == "py" else c) and r.get("device_mib_peak") is not None and r.get("device_mib_idle") is not None]
               for k in ("py", "cs")}
        memtxt = " / ".join(f"{statistics.median(mem[k]):.0f}" if mem[k] else "—" for k in ("py", "cs"))
        print(f"| {m} | {c} | {py:.1f} | {cs:.1f} | {cs/py:.2f}× | {min(len(s['py']), len(s['cs']))} | {memtxt} |")
PY
  echo "# results: $RES (${SECONDS}s)" ;;
check)
  # proofs without a Python side: CUDA-graph training steps equal their eager body (train_graph_check, fp32), and
  # the fused kernels equal the eager ops (fused_check)
  runtime
  RES=/tmp; [ -d "${OUT:-}" ] && RES=$OUT
  rc=0
  for m in ${MODELS:-opt125m llama1b}; do for short in ${SHORT_STEPS:-5}; do
    PEFT_GRAPH_CHECK_DROPOUT=${DROPOUT:-0} PEFT_GRAPH_CHECK_SHORT_STEP=$short dotnet "$G/app/Peft.Benchmarks.dll" train_graph_check --device cuda --dtype fp32 --model "$m" --seq "${CHECK_SEQ:-256}" 2>>"$RES/check.stderr.txt" | tee -a "$RES/check.jsonl" || rc=1
  done; done
  [ "${TRAINER_CHECK:-1}" = 1 ] && { dotnet "$G/app/Peft.Benchmarks.dll" trainer_graph_check --device cuda --model opt125m 2>>"$RES/check.stderr.txt" | tee -a "$RES/check.jsonl" || rc=1; }
  [ "${FUSED_CHECK:-1}" = 1 ] && { dotnet "$G/app/Peft.Benchmarks.dll" fused_check --device cuda 2>>"$RES/check.stderr.txt" | tee -a "$RES/check.jsonl" | cut -c1-400 || rc=1; }
  echo "# check rc=$rc (${SECONDS}s)"; exit $rc ;;
host)
  runtime
  RES=/tmp/host-results.jsonl; [ -d "${OUT:-}" ] && RES=$OUT/host-results.jsonl
  : > "$RES"
  for r in $(seq 1 "${ROUNDS:-2}"); do
    python3 "$ROOT/bench/py/host_cost.py" --device cuda 2>>"${RES%.jsonl}.stderr.txt" | tail -1 | tee -a "$RES"
    dotnet "$G/app/Peft.Benchmarks.dll" host_cost --device cuda --repeats 20 2>>"${RES%.jsonl}.stderr.txt" | grep '"case"' | tee -a "$RES"
    for c in lora_step full_step; do
      python3 "$ROOT/bench/py/hf_host_step.py" "$c" --device cuda --iters 30 2>>"${RES%.jsonl}.stderr.txt" | tail -1 | tee -a "$RES"
      dotnet "$G/app/Peft.Benchmarks.dll" "$c" --device cuda --dtype bf16 --model opt_tiny --batch 1 --seq 16 --repeats 30 --warmup 5 2>>"${RES%.jsonl}.stderr.txt" | grep '"case"' | tee -a "$RES"
    done
  done
  echo "# results: $RES (${SECONDS}s)" ;;
mem)
  # device memory per phase, both sides (bench/py/hf_mem_trace.py vs the C# step with PEFT_MEM_TRACE=1)
  runtime
  RES=/tmp/mem-results.txt; [ -d "${OUT:-}" ] && RES=$OUT/mem-results.txt
  : > "$RES"
  for m in ${MODELS:-opt125m}; do for c in ${CASES:-full_step lora_step}; do
    echo "## $m $c python" >>"$RES"; python3 "$ROOT/bench/py/hf_mem_trace.py" "$m" "$c" >>"$RES" 2>&1 || true
    echo "## $m $c C#" >>"$RES"
    PEFT_MEM_TRACE=1 dotnet "$G/app/Peft.Benchmarks.dll" "$c" --device cuda --dtype bf16 --model "$m" --repeats 2 --warmup 1 2>&1 | grep -E '^mem' >>"$RES" || true
  done; done
  cat "$RES"; echo "# results: $RES (${SECONDS}s)" ;;
cs)
  # any C# benchmark on the GPU machine: bench/run-gpu.sh cs NAME [ARGS...] (stdout: its JSON line)
  shift; runtime
  dotnet "$G/app/Peft.Benchmarks.dll" "$@" ;;
*) echo "usage: $0 prepare|run|check|host|mem|cs" >&2; exit 2 ;;
esac
