#!/usr/bin/env bash
# Builds libpeft_opcount.so: one counting trampoline per function exported by LibTorchSharp (TorchSharp's native
# wrapper; one exported call ≈ one ATen op for tensor functions). Each stub increments its counter and jumps to the
# real function (registers and stack untouched), so the process runs unchanged. The benchmark app routes
# TorchSharp's DllImports to it when PEFT_OPCOUNT_LIB is set (bench/Peft.Benchmarks/OpCount/OpCounter.cs).
# Usage: bench/opcount/build-shim.sh [path/to/libLibTorchSharp.so] [out dir]   (x86-64 Linux, gcc)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
real=${1:-$(ls ~/.nuget/packages/torchsharp/*/runtimes/linux-x64/native/libLibTorchSharp.so | sort -V | tail -1)}
out=${2:-$here/../results/opcount}
mkdir -p "$out"
mapfile -t names < <(nm -D --defined-only "$real" | awk '$2 == "T" { print $3 }' | sort -u)
n=${#names[@]}
{
  echo '    .text'
  for i in "${!names[@]}"; do
    s=${names[$i]}
    printf '    .globl %s\n    .type %s, @function\n%s:\n    lock incq peft_counts+%d(%%rip)\n    jmp *peft_reals+%d(%%rip)\n' "$s" "$s" "$s" $((8 * i)) $((8 * i))
  done
  echo '    .section .note.GNU-stack,"",@progbits'
} > "$out/stubs.S"
{
  echo '#include <dlfcn.h>'
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo "#define N $n"
  echo '__attribute__((visibility("hidden"))) unsigned long peft_counts[N];'
  echo '__attribute__((visibility("hidden"))) void *peft_reals[N];'
  echo 'static const char *const names[N] = {'
  for s in "${names[@]}"; do echo "  \"$s\","; done
  echo '};'
  cat <<'C'
__attribute__((constructor)) static void peft_opcount_init(void) {
  const char *path = getenv("PEFT_OPCOUNT_REAL");
  void *h = path ? dlopen(path, RTLD_NOW | RTLD_GLOBAL) : NULL;
  if (!h) { fprintf(stderr, "peft_opcount: cannot load PEFT_OPCOUNT_REAL=%s: %s\n", path ? path : "(unset)", dlerror()); abort(); }
  for (int i = 0; i < N; i++) peft_reals[i] = dlsym(h, names[i]);
}
int peft_opcount_n(void) { return N; }
const char *peft_opcount_name(int i) { return names[i]; }
unsigned long peft_opcount_get(int i) { return __atomic_load_n(&peft_counts[i], __ATOMIC_RELAXED); }
C
} > "$out/shim.c"
gcc -O2 -shared -fPIC -o "$out/libpeft_opcount.so" "$out/shim.c" "$out/stubs.S" -ldl
echo "PEFT_OPCOUNT_LIB=$out/libpeft_opcount.so PEFT_OPCOUNT_REAL=$real ($n functions)"
