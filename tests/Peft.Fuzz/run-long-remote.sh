#!/usr/bin/env bash
# Fuzz long mode of the 8 trainer-checkpoint formats on a machine with many cores but no .NET and no internet (the
# GPU machine: its Python torch libraries serve TorchSharp; the fuzz runs on the CPU with one torch thread per process).
#
#   tests/Peft.Fuzz/run-long-remote.sh prepare   # here: publish Peft.Fuzz (Release, TorchRuntime=none) into .devrun/fuzz,
#                                                # pack the .NET runtime and the one fixture the targets need (opt-tiny)
#   tests/Peft.Fuzz/run-long-remote.sh run       # there, in ONE device call with carry [".devrun/fuzz"]
#
# Env (prepare): NO_RUNTIME=1 skips packing the .NET runtime (26 MB) when the same device call carries .gpu/ from
# bench/run-gpu.sh prepare: run then uses .gpu/dotnet.tar.xz and this folder adds about 5 MB (31 MB with the runtime).
# Env (run): TORCH_LIB (libtorch folder; default the Python torch package's), INPUTS (100000 per format), BUDGET_S (510: seconds per process), SHARDS (processes per format, default
# cores / 8: shard k uses seed SEED+k and INPUTS/SHARDS inputs, so the shards' inputs differ), SEED (16), FORMATS.
# Prints one JSON object per format (inputs, accepted, rejected, crashes summed over shards) and the total; crashing
# inputs (and their errors) go to $OUT/fuzz-crashes/seed-<seed>/ ($OUT: the folder that comes back; else /tmp).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
G=$ROOT/.devrun/fuzz
ALL_FORMATS="trainer_state scheduler rng_state optimizer optimizer-st trainable-st rng_state-st checkpoint_manifest"
case "${1:-}" in
prepare)
  rm -rf "$G" && mkdir -p "$G/shared/fixtures/hf/models"
  dotnet publish "$ROOT/tests/Peft.Fuzz" -c Release -p:TorchRuntime=none -o "$G/app" -v q -nologo
  # the test SDK's code-coverage tooling, satellite resources and other OSes are not needed to run the console entry
  ( cd "$G/app" && rm -rf runtimes/{osx*,win*} Regressions CodeCoverage alpine macos ubuntu x64 x86 arm64 \
      cs de es fr it ja ko pl pt-BR ru tr zh-Hans zh-Hant ./*.xml Microsoft.CodeCoverage.* )
  tar -cJf "$G/app.tar.xz" -C "$G" app && rm -rf "$G/app"   # 15 MB -> 4 MB
  [ "${NO_RUNTIME:-0}" = 1 ] || tar -cJf "$G/dotnet.tar.xz" -C /usr/share/dotnet dotnet host/fxr shared/Microsoft.NETCore.App
  SHARED=${PEFT_SHARED_DIR:-$ROOT/../shared}
  cp "$SHARED/fixtures/README.md" "$G/shared/fixtures/"
  cp -r "$SHARED/fixtures/hf/models/opt-tiny" "$G/shared/fixtures/hf/models/"
  du -sh "$G" ;;
run)
  INPUTS=${INPUTS:-100000} BUDGET_S=${BUDGET_S:-510} SEED=${SEED:-16} FORMATS=${FORMATS:-$ALL_FORMATS}
  SHARDS=${SHARDS:-$(( $(nproc) / 8 > 0 ? $(nproc) / 8 : 1 ))}
  RT=$G/dotnet.tar.xz; [ -f "$RT" ] || RT=$ROOT/.gpu/dotnet.tar.xz   # NO_RUNTIME=1: the runtime bench/run-gpu.sh packed
  dn=$(mktemp -d) && trap 'rm -rf "$dn"' EXIT && tar -xJf "$RT" -C "$dn" && tar -xJf "$G/app.tar.xz" -C "$dn"
  export DOTNET_ROOT=$dn PATH=$dn:$PATH PEFT_SHARED_DIR=$G/shared
  # TORCH_LIB: a folder with libtorch*.so (default: the Python torch package's lib/)
  TORCH_LIB=${TORCH_LIB:-$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib}
  export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
  export LIBTORCHSHARP=$dn/app/runtimes/linux-x64/native/libLibTorchSharp.so
  export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""
  RES=/tmp/fuzz-long; [ -d "${OUT:-}" ] && RES=$OUT
  mkdir -p "$RES/fuzz-lines" "$RES/fuzz-crashes"
  echo "# $(nproc) cores, $SHARDS shard(s) per format, $INPUTS inputs per format, ${BUDGET_S} s per process"
  pids=()
  for f in $FORMATS; do
    for k in $(seq 0 $((SHARDS - 1))); do
      s=$((SEED + k))
      dotnet "$dn/app/Peft.Fuzz.dll" --inputs $(( (INPUTS + SHARDS - 1) / SHARDS )) --seed "$s" --format "checkpoint-$f" \
        --seconds "$BUDGET_S" --json --out "$RES/fuzz-crashes/seed-$s" \
        > "$RES/fuzz-lines/$f-$s.jsonl" 2> "$RES/fuzz-lines/$f-$s.stderr.txt" &
      pids+=($!)
    done
  done
  rc=0; for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  python3 - "$RES/fuzz-lines" <<'PY'
import glob, json, os, sys
rows = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl"))):
    lines = [l for l in open(path) if l.startswith("{")]
    if not lines:
        err = open(path[:-len(".jsonl")] + ".stderr.txt").read()[-2000:]
        print(json.dumps({"file": os.path.basename(path), "error": "no result (process died?)", "stderr_tail": err}))
        continue
    r = json.loads(lines[-1])
    t = rows.setdefault(r["format"], {"format": r["format"], "inputs": 0, "accepted": 0, "rejected": 0, "crashes": 0, "seconds": 0, "shards": 0, "crash_kinds": []})
    for k in ("inputs", "accepted", "rejected", "crashes"): t[k] += r[k]
    t["seconds"] = max(t["seconds"], r["seconds"]); t["shards"] += 1; t["crash_kinds"] += r["crash_kinds"]
for t in rows.values(): print(json.dumps(t))
print(json.dumps({"total_inputs": sum(t["inputs"] for t in rows.values()), "total_crashes": sum(t["crashes"] for t in rows.values()), "formats": len(rows)}))
PY
  echo "# results under $RES (rc $rc, ${SECONDS} s)" ;;
*) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
