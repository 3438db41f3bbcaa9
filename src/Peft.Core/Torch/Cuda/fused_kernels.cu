// Fused kernels for Peft.NET (src/Peft.Core/Torch/Cuda/FusedKernels.cs), compiled at run time with NVRTC for the
// device's compute capability. No headers: 16-bit floats are carried as unsigned short and converted with the same
// rounding as torch (round to nearest even).
//
// Parity rule: every elementwise step rounds where torch's eager chain rounds (one torch op = one rounding), so the
// products and sums that torch computes in separate kernels use __fmul_rn / __fadd_rn here (never contracted into an
// FMA). Expressions that torch computes inside ONE kernel (silu, silu_backward) are written exactly as in torch's
// source and compiled with NVRTC's defaults (--fmad=true), as nvcc compiled torch's. Only the row reductions (the
// RMSNorm mean of squares and the backward's row sum) and the weight-gradient column sum run in another order.
// Rotary and the LoRA tail are purely elementwise: bit-identical to their eager chains.

typedef unsigned short u16;
typedef long long i64;

struct Bf16 {
    typedef u16 T;
    static __device__ __forceinline__ float load(u16 v) { return __uint_as_float(((unsigned)v) << 16); }
    static __device__ __forceinline__ u16 store(float f) {
#if __CUDA_ARCH__ >= 800
        u16 h;
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
        return h;
#else
        unsigned u = __float_as_uint(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)0x7fff;
        u += 0x7fffu + ((u >> 16) & 1u);
        return (u16)(u >> 16);
#endif
    }
    static __device__ __forceinline__ float round(float f) { return load(store(f)); }
};

struct F16 {
    typedef u16 T;
    static __device__ __forceinline__ float load(u16 v) {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
        return f;
    }
    static __device__ __forceinline__ u16 store(float f) {
        u16 h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
        return h;
    }
    static __device__ __forceinline__ float round(float f) { return load(store(f)); }
};

struct F32 {
    typedef float T;
    static __device__ __forceinline__ float load(float v) { return v; }
    static __device__ __forceinline__ float store(float f) { return f; }
    static __device__ __forceinline__ float round(float f) { return f; }
};

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. sh: 33 floats.
__device__ __forceinline__ float block_sum(float v, float* sh) {
    for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int warps = blockDim.x >> 5;
        v = lane < warps ? sh[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (lane == 0) sh[32] = v;
    }
    __syncthreads();
    return sh[32];
}

// torch's silu kernel: x / (1 + exp(-x)) in float.
__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }

// RMSNorm forward, one block per row (HF LlamaRMSNorm):
//   x32 = float(x); var = mean(x32 * x32) (sum · inv_h, as torch's mean); r = rsqrt(var + eps);
//   h = round(x32 · r); out = round(float(w) · h); rstd[row] = r.
template <typename L>
__device__ void rms_fwd(const typename L::T* x, const typename L::T* w, typename L::T* out, float* rstd, int h, float inv_h, float eps) {
    __shared__ float sh[33];
    i64 row = blockIdx.x;
    const typename L::T* xr = x + row * h;
    typename L::T* orow = out + row * h;
    float acc = 0.0f;
    for (int j = threadIdx.x; j < h; j += blockDim.x) {
        float v = L::load(xr[j]);
        acc = __fadd_rn(acc, __fmul_rn(v, v));
    }
    float var = __fmul_rn(block_sum(acc, sh), inv_h);
    float r = rsqrtf(__fadd_rn(var, eps));
    if (threadIdx.x == 0) rstd[row] = r;
    for (int j = threadIdx.x; j < h; j += blockDim.x) {
        float hn = L::round(__fmul_rn(L::load(xr[j]), r));
        orow[j] = L::store(__fmul_rn(L::load(w[j]), hn));
    }
}

// RMSNorm backward for x, one block per row: the autograd chain of the forward.
//   gh = round(g · w); gr = Σ_j gh_j · x32_j; gv = (-0.5 · gr) · (r · r · r); c = gv · inv_h (mean's backward);
//   gx = round(gh · r + c · (2 · x32)).
template <typename L>
__device__ void rms_bwd_x(const typename L::T* g, const typename L::T* x, const typename L::T* w, const float* rstd, typename L::T* gx, int h, float inv_h) {
    __shared__ float sh[33];
    i64 row = blockIdx.x;
    const typename L::T* gr = g + row * h;
    const typename L::T* xr = x + row * h;
    typename L::T* gxr = gx + row * h;
    float r = rstd[row];
    float acc = 0.0f;
    for (int j = threadIdx.x; j < h; j += blockDim.x) {
        float gh = L::round(__fmul_rn(L::load(gr[j]), L::load(w[j])));
        acc = __fadd_rn(acc, __fmul_rn(gh, L::load(xr[j])));
    }
    float gsum = block_sum(acc, sh);
    float gv = __fmul_rn(__fmul_rn(-0.5f, gsum), __fmul_rn(__fmul_rn(r, r), r));
    float c = __fmul_rn(gv, inv_h);
    for (int j = threadIdx.x; j < h; j += blockDim.x) {
        float xv = L::load(xr[j]);
        float gh = L::round(__fmul_rn(L::load(gr[j]), L::load(w[j])));
        gxr[j] = L::store(__fadd_rn(__fmul_rn(gh, r), __fmul_rn(c, __fmul_rn(2.0f, xv))));
    }
}

// RMSNorm weight gradient, partial column sums: partial[chunk, j] = Σ_{rows of the chunk} round(g · round(x32 · r))
// in float (the caller sums the chunks and rounds once). Grid (ceil(h / blockDim.x), chunks).
template <typename L>
__device__ void rms_bwd_w(const typename L::T* g, const typename L::T* x, const float* rstd, float* partial, i64 rows, int h, int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= h) return;
    i64 r0 = (i64)blockIdx.y * rows_per_chunk;
    i64 r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    float acc = 0.0f;
    for (i64 row = r0; row < r1; row++) {
        float hn = L::round(__fmul_rn(L::load(x[row * h + j]), rstd[row]));
        acc = __fadd_rn(acc, L::round(__fmul_rn(L::load(g[row * h + j]), hn)));
    }
    partial[(i64)blockIdx.y * h + j] = acc;
}

// SwiGLU, one element (shared by the vector and the scalar loops).
template <typename L>
__device__ __forceinline__ typename L::T swiglu_fwd_one(typename L::T gate, typename L::T up) {
    float a = L::round(silu_f(L::load(gate)));
    return L::store(__fmul_rn(a, L::load(up)));
}

template <typename L>
__device__ __forceinline__ void swiglu_bwd_one(typename L::T g, typename L::T gate, typename L::T up, typename L::T& d_gate, typename L::T& d_up) {
    float dy = L::load(g);
    float x = L::load(gate);
    float a = L::round(silu_f(x));
    d_up = L::store(__fmul_rn(dy, a));
    float da = L::round(__fmul_rn(dy, L::load(up)));
    float s = 1.0f / (1.0f + expf(-x));
    d_gate = L::store(da * s * (1.0f + x * (1.0f - s)));
}

// 16 bytes, moved with one vector load / store.
struct alignas(16) Raw16 {
    unsigned w[4];
};

// 16-byte packs of elements for the vector loops (used when every pointer is 16-byte aligned: vec != 0).
template <typename L>
struct Pack {
    static const int N = 16 / sizeof(typename L::T);
    union { Raw16 raw; typename L::T v[16 / sizeof(typename L::T)]; };
};

// SwiGLU forward (HF LlamaMLP's act_fn(gate) * up with silu): out = round(round(silu(gate)) · up).
template <typename L>
__device__ void swiglu_fwd(const typename L::T* gate, const typename L::T* up, typename L::T* out, i64 n, int vec) {
    i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
    const int N = Pack<L>::N;
    i64 packs = vec ? n / N : 0;
    for (i64 i = tid; i < packs; i += stride) {
        Pack<L> pg, pu, po;
        pg.raw = reinterpret_cast<const Raw16*>(gate)[i];
        pu.raw = reinterpret_cast<const Raw16*>(up)[i];
#pragma unroll
        for (int k = 0; k < N; k++) po.v[k] = swiglu_fwd_one<L>(pg.v[k], pu.v[k]);
        reinterpret_cast<Raw16*>(out)[i] = po.raw;
    }
    for (i64 i = packs * N + tid; i < n; i += stride) out[i] = swiglu_fwd_one<L>(gate[i], up[i]);
}

// SwiGLU backward (silu recomputed): d_up = round(g · round(silu(gate))); d_act = round(g · up);
// d_gate = torch's silu_backward(d_act, gate) = d_act · s · (1 + x · (1 − s)), s = 1 / (1 + exp(−x)).
template <typename L>
__device__ void swiglu_bwd(const typename L::T* g, const typename L::T* gate, const typename L::T* up, typename L::T* d_gate, typename L::T* d_up, i64 n, int vec) {
    i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
    const int N = Pack<L>::N;
    i64 packs = vec ? n / N : 0;
    for (i64 i = tid; i < packs; i += stride) {
        Pack<L> pg, pgate, pu, pdg, pdu;
        pg.raw = reinterpret_cast<const Raw16*>(g)[i];
        pgate.raw = reinterpret_cast<const Raw16*>(gate)[i];
        pu.raw = reinterpret_cast<const Raw16*>(up)[i];
#pragma unroll
        for (int k = 0; k < N; k++) swiglu_bwd_one<L>(pg.v[k], pgate.v[k], pu.v[k], pdg.v[k], pdu.v[k]);
        reinterpret_cast<Raw16*>(d_gate)[i] = pdg.raw;
        reinterpret_cast<Raw16*>(d_up)[i] = pdu.raw;
    }
    for (i64 i = packs * N + tid; i < n; i += stride) swiglu_bwd_one<L>(g[i], gate[i], up[i], d_gate[i], d_up[i]);
}


// Rotary (HF apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, each product and the sum rounded to the dtype), q and
// k of one layer in one launch. Tables: cos and the half-negated sin ss (RotaryEmbedding.CosSin) [B, 1, T, D], read
// through (batch, position) strides (a batch stride of 0 broadcasts). Inputs [B, H, T, D] through (b, h, t) strides,
// unit stride on D; outputs written [B, T, H, D] contiguous (the projection's layout, so the transpose back is free).
// One block per (b, t); a thread per (head, i < D/2) pair computes elements i and i + D/2:
//   forward:  y_i = round(round(x_i·c_i) + round(x_{i+D/2}·ss_i)),  y_{i+D/2} = round(round(x_{i+D/2}·c_{i+D/2}) + round(x_i·ss_{i+D/2}))
//   backward (autograd of the roll form: g·cos, plus the roll back of g·ss, summed in the dtype):
//             gx_i = round(round(g_i·c_i) + round(g_{i+D/2}·ss_{i+D/2})),  gx_{i+D/2} = round(round(g_{i+D/2}·c_{i+D/2}) + round(g_i·ss_i))
struct RopeArgs {
    i64 t, hq, hk, d;
    i64 qb, qh, qt, kb, kh, kt;   // input strides (q, k)
    i64 cb, ct, sb, st;           // table strides (cos, ss)
    int backward;
};

template <typename L>
__device__ void rope(const typename L::T* q, const typename L::T* k, const typename L::T* cs, const typename L::T* ss,
                     typename L::T* oq, typename L::T* ok, RopeArgs a) {
    i64 row = blockIdx.x;
    i64 b = row / a.t, t = row % a.t;
    i64 half = a.d / 2;
    const typename L::T* c = cs + b * a.cb + t * a.ct;
    const typename L::T* s = ss + b * a.sb + t * a.st;
    i64 pairs = (a.hq + a.hk) * half;
    for (i64 j = threadIdx.x; j < pairs; j += blockDim.x) {
        i64 head = j / half, i = j % half;
        const typename L::T* x;
        typename L::T* o;
        if (head < a.hq) {
            x = q + b * a.qb + head * a.qh + t * a.qt;
            o = oq + (row * a.hq + head) * a.d;
        } else {
            i64 hk = head - a.hq;
            x = k + b * a.kb + hk * a.kh + t * a.kt;
            o = ok + (row * a.hk + hk) * a.d;
        }
        float x1 = L::load(x[i]), x2 = L::load(x[i + half]);
        float c1 = L::load(c[i]), c2 = L::load(c[i + half]);
        float s1 = L::load(s[i]), s2 = L::load(s[i + half]);
        float sa = a.backward ? s2 : s1;   // partner of element i
        float sb = a.backward ? s1 : s2;   // partner of element i + D/2
        o[i] = L::store(__fadd_rn(L::round(__fmul_rn(x1, c1)), L::round(__fmul_rn(x2, sa))));
        o[i + half] = L::store(__fadd_rn(L::round(__fmul_rn(x2, c2)), L::round(__fmul_rn(x1, sb))));
    }
}

// PEFT's float32 LoRA tail (lora.Linear.forward with float32 adapters): result = result + h * s, then
// .to(result dtype): out = round(float(result) + (h · s)), the product and the sum rounded to float32 separately
// (two torch ops, so no FMA). Elementwise over n; result and out in the base dtype, h float32.
template <typename L>
__device__ void lora_tail_fwd(const typename L::T* result, const float* h, typename L::T* out, float s, i64 n) {
    i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = tid; i < n; i += stride) out[i] = L::store(__fadd_rn(L::load(result[i]), __fmul_rn(h[i], s)));
}

// Its backward for h: float(g) · s in float32 (the cast's backward, then the mul's); the grad for result is g itself.
template <typename L>
__device__ void lora_tail_bwd(const typename L::T* g, float* gh, float s, i64 n) {
    i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = tid; i < n; i += stride) gh[i] = __fmul_rn(L::load(g[i]), s);
}


// AdamW (decoupled weight decay) over one flat buffer, element for element the op chain of torch's single-tensor
// AdamW that Peft.NET's optimizer runs eagerly (Optimization/AdamW.Apply), rounding to the parameter dtype after each
// op as each eager op stores its result, with each op's arithmetic as torch's CUDA kernel computes it:
//   p.mul_(decay)                     p1 = R(p · decay)                               (only when weight decay ≠ 0)
//   m.lerp_(g, w) (w < 0.5)           m1 = R(fma(w, g − m, m))                         (lerp's small-weight branch)
//   v.mul_(β2)                        v1 = R(v · β2)
//   v.addcmul_(g, g, 1 − β2)          v2 = R(fma(1 − β2, g · g, v1))                   (a + α·(b·c))
//   d = v.sqrt()                      d1 = R(sqrt(v2))
//   d.div_(√bc2)                      d2 = R(d1 · inv) with inv = 1 / √bc2 in float  (division by a CPU scalar)
//   d.add_(ε)                         d3 = R(d2 + ε)
//   p.addcdiv_(m, d, −lr/bc1)         p2 = R(fma(−lr/bc1, m1 / d3, p1))                (a + α·(b/c))
// Every step is written with an explicit round-to-nearest intrinsic, so no compiler contraction changes it. On
// bfloat16 and float16 buffers this is bit-equal to the eager chain (bench fused_check); on float32 the parameter
// differed by one ulp in ~0.7 % of the elements (an un-contracted last op made it 1.0 %, so the cause is elsewhere in
// the chain; 16-bit stores hide it), so the optimizer keeps the eager chain for float32 (AdamW.UsesFusedKernel). The
// step-dependent scalars come from AdamWArgs, or from `dev` (float32 [3]: decay, −lr/bc1, 1/√bc2) when it is not null:
// a captured CUDA graph replays fixed kernel arguments, so there they live in device memory.
struct AdamWArgs {
    float decay, lerp_w, beta2, one_minus_beta2, inv_bc2_sqrt, eps, neg_step_size;
    int has_decay;
};

template <typename L>
__device__ void adamw_step(typename L::T* p, const typename L::T* g, typename L::T* m, typename L::T* v, const float* dev,
                           AdamWArgs a, i64 n) {
    float decay = a.decay, neg_step = a.neg_step_size, inv_bc2 = a.inv_bc2_sqrt;
    if (dev) { decay = dev[0]; neg_step = dev[1]; inv_bc2 = dev[2]; }
    i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = tid; i < n; i += stride) {
        float pi = L::load(p[i]), gi = L::load(g[i]), mi = L::load(m[i]), vi = L::load(v[i]);
        if (a.has_decay) pi = L::round(__fmul_rn(pi, decay));
        mi = L::round(__fmaf_rn(a.lerp_w, __fsub_rn(gi, mi), mi));
        vi = L::round(__fmul_rn(vi, a.beta2));
        vi = L::round(__fmaf_rn(a.one_minus_beta2, __fmul_rn(gi, gi), vi));
        float d = L::round(__fsqrt_rn(vi));
        d = L::round(__fmul_rn(d, inv_bc2));
        d = L::round(__fadd_rn(d, a.eps));
        pi = __fmaf_rn(neg_step, __fdiv_rn(mi, d), pi);
        p[i] = L::store(pi);
        m[i] = L::store(mi);
        v[i] = L::store(vi);
    }
}

#define PEFT_INSTANTIATE(SUFFIX, L)                                                                                    \
    extern "C" __global__ void rms_fwd_##SUFFIX(const L::T* x, const L::T* w, L::T* out, float* rstd, int h,          \
                                                float inv_h, float eps) { rms_fwd<L>(x, w, out, rstd, h, inv_h, eps); } \
    extern "C" __global__ void rms_bwd_x_##SUFFIX(const L::T* g, const L::T* x, const L::T* w, const float* rstd,      \
                                                  L::T* gx, int h, float inv_h) { rms_bwd_x<L>(g, x, w, rstd, gx, h, inv_h); } \
    extern "C" __global__ void rms_bwd_w_##SUFFIX(const L::T* g, const L::T* x, const float* rstd, float* partial,    \
                                                  i64 rows, int h, int rows_per_chunk) {                                \
        rms_bwd_w<L>(g, x, rstd, partial, rows, h, rows_per_chunk);                                                     \
    }                                                                                                                   \
    extern "C" __global__ void swiglu_fwd_##SUFFIX(const L::T* gate, const L::T* up, L::T* out, i64 n, int vec) {     \
        swiglu_fwd<L>(gate, up, out, n, vec);                                                                           \
    }                                                                                                                   \
    extern "C" __global__ void swiglu_bwd_##SUFFIX(const L::T* g, const L::T* gate, const L::T* up, L::T* d_gate,     \
                                                   L::T* d_up, i64 n, int vec) {                                        \
        swiglu_bwd<L>(g, gate, up, d_gate, d_up, n, vec);                                                               \
    }                                                                                                                   \
    extern "C" __global__ void rope_##SUFFIX(const L::T* q, const L::T* k, const L::T* cs, const L::T* ss, L::T* oq,   \
                                             L::T* ok, RopeArgs a) { rope<L>(q, k, cs, ss, oq, ok, a); }                \
    extern "C" __global__ void lora_tail_fwd_##SUFFIX(const L::T* result, const float* h, L::T* out, float s, i64 n) { \
        lora_tail_fwd<L>(result, h, out, s, n);                                                                         \
    }                                                                                                                   \
    extern "C" __global__ void lora_tail_bwd_##SUFFIX(const L::T* g, float* gh, float s, i64 n) { lora_tail_bwd<L>(g, gh, s, n); } \
    extern "C" __global__ void adamw_step_##SUFFIX(L::T* p, const L::T* g, L::T* m, L::T* v, const float* dev,         \
                                                   AdamWArgs a, i64 n) { adamw_step<L>(p, g, m, v, dev, a, n); }

PEFT_INSTANTIATE(bf16, Bf16)
PEFT_INSTANTIATE(f16, F16)
PEFT_INSTANTIATE(f32, F32)
