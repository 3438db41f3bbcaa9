/* Peft.NET MKL vendor-check shim (see MklFastPath.cs).
 * Intel MKL, statically linked into libtorch_cpu.so, picks its AVX2 / AVX-512 GEMM kernels only when
 * mkl_serv_intel_cpu_true() says the CPU is an Intel one; on AMD it falls back to slower generic kernels.
 * Loaded with RTLD_GLOBAL before libtorch, this definition comes first in the global symbol scope, so libtorch's
 * call resolves here: MKL then chooses its kernels by the CPU's instruction-set features alone. */
int mkl_serv_intel_cpu_true(void) { return 1; }
