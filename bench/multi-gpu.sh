#!/usr/bin/env bash
# Multi-GPU acceptance checks of issue 18 (data parallelism over NCCL, layer placement), ONE device call on a machine
# with two GPUs (nvidia-h200-x2), total ~4-6 minutes:
#
#   bash bench/multi-gpu.sh prepare   # dev machine: bench/run-gpu.sh prepare + peft-run published into .gpu/app
#   bash bench/multi-gpu.sh run       # GPU machine, carry [".gpu"]; results in $OUT/multi-gpu.jsonl + a summary
#
# Steps: (0) DistributedSampler orders vs torch.utils.data.DistributedSampler (Python torch on that machine);
# (a) NCCL collectives smoke + bandwidth across 2 ranks; (b) DP LoRA, Llama-1B shape, bf16, 8x512 per GPU:
# 1 GPU with global batch 16 vs 2 GPUs with 8 each (loss curves side by side, wall-time ratio, target <= 0.6x);
# (c) rank 1 SIGKILLs itself after step 3: rank 0 must exit by its watchdog with a message (PEFT_DIST_TIMEOUT 60 s);
# (d) Llama-1B split over cuda:0/cuda:1 by DevicePlacement: logits / loss / LoRA grads vs one GPU (fp32);
# (e) tokens/s on 1 vs 2 GPUs and scaling efficiency (from b) as JSON lines.
# Env: DP_STEPS (20), SEQ (512), STEP_TIMEOUT (240 s per step of this script).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
G=$ROOT/.gpu
case "${1:-}" in
prepare)
  bash "$ROOT/bench/run-gpu.sh" prepare
  dotnet publish "$ROOT/tools/Peft.Run" -c Release -p:TorchRuntime=none -o "$G/app" -v q -nologo
  rm -rf "$G"/app/runtimes/{osx*,win*}
  du -sh "$G" ;;
run)
  STEPS=${DP_STEPS:-20} SEQ=${SEQ:-512} TO=${STEP_TIMEOUT:-240}
  dn=$(mktemp -d) && tar -xJf "$G/dotnet.tar.xz" -C "$dn"
  export DOTNET_ROOT=$dn PATH=$dn:$PATH
  TORCH_DIR=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")
  export LD_LIBRARY_PATH=$TORCH_DIR/lib:${LD_LIBRARY_PATH:-}
  export LIBTORCHSHARP=$G/app/runtimes/linux-x64/native/libLibTorchSharp.so
  [ -f "$TORCH_DIR/../nvidia/nccl/lib/libnccl.so.2" ] && export PEFT_NCCL_LIB=$(cd "$TORCH_DIR/../nvidia/nccl/lib" && pwd)/libnccl.so.2
  echo "# PEFT_NCCL_LIB=${PEFT_NCCL_LIB:-<search>}"
  W=/tmp/multi-gpu; [ -d "${OUT:-}" ] && W=$OUT; mkdir -p "$W"
  RES=$W/multi-gpu.jsonl; : > "$RES"
  APP="$G/app/Peft.Benchmarks.dll"; RUN="$G/app/peft-run.dll"
  nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader || true
  t0=$SECONDS
  stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done; }

  echo "## (0) DistributedSampler vs torch"
  dotnet "$APP" sampler_orders 2>/dev/null | grep '"sampler_order"' > "$W/sampler.jsonl"
  python3 - "$W/sampler.jsonl" <<'PY' | tee -a "$W/summary.txt"
import json, sys
from torch.utils.data import DistributedSampler
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = []
for r in rows:
    s = DistributedSampler(range(r["n"]), num_replicas=r["world"], rank=r["rank"], shuffle=r["shuffle"], seed=r["seed"], drop_last=r["drop_last"])
    s.set_epoch(r["epoch"])
    if list(s) != r["indices"]: bad.append(r)
print(f"(0) sampler: {len(rows) - len(bad)}/{len(rows)} per-rank orders equal torch's DistributedSampler" + (f"; first mismatch {bad[0]}" if bad else ""))
PY

  echo "## (a) NCCL smoke, 2 ranks"
  timeout "$TO" dotnet "$RUN" --nproc-per-node 2 "$APP" nccl_smoke --device cuda 2> "$W/a.stderr" | grep '"nccl_smoke"' | tee -a "$RES"
  echo "(a) exit ${PIPESTATUS[0]}" | tee -a "$W/summary.txt"; tail -5 "$W/a.stderr"

  echo "## (b) DP LoRA llama1b bf16: 1 GPU x16 vs 2 GPUs x8"
  common=(dp_lora --device cuda --dtype bf16 --model llama1b --seq "$SEQ" --warmup 3)
  CUDA_VISIBLE_DEVICES=0 DP_STEPS=$STEPS timeout "$TO" dotnet "$APP" "${common[@]}" --batch 16 2> "$W/b1.stderr" | grep '"dp_lora"' | tee -a "$RES" > "$W/b1.json"
  DP_STEPS=$STEPS timeout "$TO" dotnet "$RUN" --nproc-per-node 2 "$APP" "${common[@]}" --batch 8 2> "$W/b2.stderr" | grep '"dp_lora"' | tee -a "$RES" > "$W/b2.json"
  tail -n 3 "$W/b1.stderr" "$W/b2.stderr"

  echo "## (c) kill rank 1 after step 3"
  kstart=$(date +%s.%N)
  DP_STEPS=40 DP_KILL_RANK=1 DP_KILL_STEP=3 PEFT_DIST_TIMEOUT=60 timeout "$TO" dotnet "$RUN" --nproc-per-node 2 --wait-on-failure 90 "$APP" "${common[@]}" --batch 8 \
    > /dev/null 2> >(stamp > "$W/c.stderr"); kc=$?
  sleep 1; kend=$(date +%s.%N)
  python3 - "$W/c.stderr" "$kc" "$kstart" "$kend" <<'PY' | tee -a "$W/summary.txt" "$RES"
import json, sys
lines = [l.rstrip("\n").split(" ", 1) for l in open(sys.argv[1]) if " " in l]
t_kill = next((float(t) for t, l in lines if "killing myself" in l), None)
t_fatal = next((float(t) for t, l in lines if "FATAL" in l), None)
t_done = next((float(t) for t, l in lines if "job failed" in l), None)
fatal = next((l for t, l in lines if "FATAL" in l), "")
codes = next((l for t, l in lines if "job failed" in l), "")
print(json.dumps({"case": "kill_rank", "launcher_exit": int(sys.argv[2]), "fatal_message": fatal, "launcher_line": codes,
  "s_kill_to_fatal": None if not (t_kill and t_fatal) else round(t_fatal - t_kill, 2),
  "s_kill_to_job_end": None if not (t_kill and t_done) else round(t_done - t_kill, 2),
  "rank0_exited_by_watchdog": "[3," in codes.replace(" ", "") or "exit codes [3" in codes}))
PY

  echo "## (d) split llama1b over cuda:0 / cuda:1 vs cuda:0 (fp32)"
  CUDA_VISIBLE_DEVICES=0,1 timeout "$TO" dotnet "$APP" split_logits --device cuda --dtype fp32 --model llama1b --seq 256 2> "$W/d.stderr" | grep '"split_logits"' | tee -a "$RES" | cut -c1-600
  tail -3 "$W/d.stderr"

  echo "## (e) summary"
  python3 - "$W/b1.json" "$W/b2.json" "$RES" <<'PY' | tee -a "$W/summary.txt"
import json, sys
def load(p):
    try: return json.loads(open(p).read().strip().splitlines()[-1])
    except Exception: return None
one, two = load(sys.argv[1]), load(sys.argv[2])
if not (one and two):
    print("(b) missing result(s):", "1gpu" if not one else "", "2gpu" if not two else ""); sys.exit(0)
print("(b) step | loss 1 GPU (x16) | loss 2 GPUs (x8 each) | rel diff")
worst = 0.0
for i, (a, b) in enumerate(zip(one["losses"], two["losses"])):
    d = abs(a - b) / abs(a); worst = max(worst, d)
    print(f"    {i+1:4d} | {a:.6f} | {b:.6f} | {d:.2e}")
ratio = two["train_loop_s"] / one["train_loop_s"]; sratio = two["steady_s_per_step"] / one["steady_s_per_step"]
eff = two["tok_per_s"] / (2 * one["tok_per_s"])
print(f"(b) max rel loss diff {worst:.2e} (bf16 tolerance 2e-2: {'PASS' if worst <= 2e-2 else 'FAIL'}); "
      f"train loop {two['train_loop_s']:.2f}s vs {one['train_loop_s']:.2f}s = {ratio:.3f}x; steady step {sratio:.3f}x (target <= 0.6: {'PASS' if sratio <= 0.6 else 'FAIL'})")
print(f"(e) tokens/s: 1 GPU {one['tok_per_s']:.0f}, 2 GPUs {two['tok_per_s']:.0f}, scaling efficiency {eff:.2f}")
with open(sys.argv[3], "a") as f:
    f.write(json.dumps({"case": "dp_scaling", "tok_per_s_1gpu": one["tok_per_s"], "tok_per_s_2gpu": two["tok_per_s"], "scaling_efficiency": round(eff, 3),
                        "loop_time_ratio": round(ratio, 3), "steady_step_ratio": round(sratio, 3), "max_rel_loss_diff": worst}) + "\n")
PY
  echo "# results: $RES, summary: $W/summary.txt (${SECONDS}s total, $((SECONDS - t0))s of checks)" ;;
*) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
