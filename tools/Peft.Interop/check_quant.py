"""Bit-for-bit check of Peft.NET's 4-bit quantisation against a Python port of bitsandbytes' algorithm.

bitsandbytes itself is not installed on the GPU machine, so this file re-implements what bnb's CUDA kernels do
(csrc/kernels.cu: kQuantizeBlockwise with dQuantizeNF4 / dQuantizeFP4 decision trees, dQuantize<0> binary search for
the 8-bit dynamic map; functional.py: quantize_4bit with compress_statistics, create_dynamic_map) in plain torch, runs
it on CUDA when available (else CPU), and compares with what Peft.NET wrote:

    dotnet run --project tools/Peft.Interop -- quant MODELS_DIR out/interop      # MODELS_DIR holds llama-tiny
    python3 tools/Peft.Interop/check_quant.py out/interop MODELS_DIR

Then it rebuilds every fixture model in four bitsandbytes configs (int8, HF's default fp4, nf4, nf4 + double quant):
the modules transformers itself would quantise (its get_modules_to_not_convert / should_convert_module), each weight
rounded by this port (Conv1D transposed first, as HF's Bnb4bitQuantize / Bnb8bitQuantize do), and compares the module
list, the logits and their cosine to the float32 logits with what Peft.NET wrote (quant/fixture-cosines.*). int8
layers are replaced by a port of bnb's Linear8bitLt in evaluation (MatMul8bitLt: float16 activations quantised
row-wise to int8, exact int32 product, the CUDA dequant kernel's rounding, outlier columns above llm_int8_threshold
multiplied in floating point).

It also reports how many codes bnb's pure-torch "default" backend (argmin over the table) would assign differently;
those differ from the CUDA kernels only on exact ties and for tiny negative FP4 values (-0 vs +0).
"""
import functools
import struct
import sys

import torch
from safetensors.torch import load_file
from safetensors import safe_open

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
FP4_LUT = [0.0, 0.005208333333, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25]


def q_nf4(x):  # dQuantizeNF4, written as the kernel's nested tree
    def f(v):
        if v > 0.03979014977812767:
            if v > 0.3893125355243683:
                if v > 0.6427869200706482:
                    return 15 if v > 0.8614784181118011 else 14
                return 13 if v > 0.5016634166240692 else 12
            if v > 0.2035212516784668:
                return 11 if v > 0.2920137718319893 else 10
            return 9 if v > 0.1202552504837513 else 8
        if v > -0.33967943489551544:
            if v > -0.13791173323988914:
                return 7 if v > -0.045525018125772476 else 6
            return 5 if v > -0.23460740596055984 else 4
        if v > -0.6106329262256622:
            return 3 if v > -0.4599952697753906 else 2
        return 1 if v > -0.8480964004993439 else 0
    return tree_apply(x, f)


def q_fp4(x):  # dQuantizeFP4
    def f(v):
        sign = 8 if v < 0 else 0
        v = abs(v)
        if v > 0.29166667:
            if v > 0.583333:
                return (3 if v > 0.8333333 else 2) + sign
            return (5 if v > 0.4166667 else 4) + sign
        if v > 0.0859375:
            return (7 if v > 0.20833333 else 6) + sign
        return (1 if v > 0.00260417 else 0) + sign
    return tree_apply(x, f)


def tree_apply(x, f):
    # the pivots are float32 literals in the kernel: compare in float32 by evaluating each distinct value once
    vals = x.float().cpu()
    uniq, inv = torch.unique(vals, return_inverse=True)
    codes = torch.tensor([f32tree(f, u) for u in uniq.tolist()], dtype=torch.int64)
    return codes[inv].to(x.device)


def f32tree(f, v):
    import math
    if math.isnan(v):
        return 0  # every comparison with NaN is false in the kernel: NF4 falls to 0b0000, FP4 to 0b0000
    return f(F32(v))


@functools.lru_cache(maxsize=None)
def to_f32(o):
    return struct.unpack("f", struct.pack("f", o))[0]


class F32(float):
    """A float whose comparisons round the other operand to float32, as the kernel's float literals are."""
    def __gt__(self, o): return float(self) > to_f32(float(o))
    def __lt__(self, o): return float(self) < to_f32(float(o))
    def __abs__(self): return F32(abs(float(self)))


def dynamic_map():
    data = []
    for i in range(7):
        b = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        means = (b[:-1] + b[1:]) / 2.0
        data += ((10 ** (-6 + i)) * means).tolist()
        data += (-(10 ** (-6 + i)) * means).tolist()
    data += [0, 1.0]
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def d_quantize(code, x):  # dQuantize<0>: binary search + midpoint rule, per element
    c = code.tolist()
    out = []
    for v in x.tolist():
        pivot, upper_p, lower_p = 127, 255, 0
        lower, upper = -1.0, 1.0
        val = c[pivot]
        i = 64
        while i > 0:
            if F32(v) > val:
                lower_p, lower, pivot = pivot, val, pivot + i
            else:
                upper_p, upper, pivot = pivot, val, pivot - i
            val = c[pivot]
            i >>= 1
        if upper_p == 255:
            upper = c[255]
        if lower_p == 0:
            lower = c[0]
        if F32(v) > val:
            mid = ((torch.tensor(upper, dtype=torch.float32) + torch.tensor(val, dtype=torch.float32)) * 0.5).item()
            out.append(upper_p if F32(v) > mid else pivot)
        else:
            mid = ((torch.tensor(lower, dtype=torch.float32) + torch.tensor(val, dtype=torch.float32)) * 0.5).item()
            out.append(lower_p if F32(v) < mid else pivot)
    return torch.tensor(out, dtype=torch.uint8)


def blockwise(x, bs):
    flat = x.reshape(-1).float()
    n = flat.numel()
    blocks = (n + bs - 1) // bs
    pad = torch.zeros(blocks * bs - n, dtype=torch.float32, device=flat.device)
    grid = torch.cat([flat, pad]).view(blocks, bs)
    absmax = grid.abs().amax(1)
    scaled = (grid * (1.0 / absmax).unsqueeze(1)).reshape(-1)[:n]
    return absmax, scaled


def quantize_4bit(x, qtype, bs, nested, offset=None):
    """bnb quantize_4bit; offset: use this double-quant offset instead of absmax.mean() (see main on CUDA)."""
    absmax, scaled = blockwise(x, bs)
    if scaled.numel() % 2:
        scaled = torch.cat([scaled, scaled.new_zeros(1)])
    codes = (q_nf4 if qtype == "nf4" else q_fp4)(scaled)
    packed = (codes[0::2] * 16 + codes[1::2]).to(torch.uint8).unsqueeze(1)
    out = {"packed": packed, "absmax": absmax}
    if nested:
        offset = absmax.mean() if offset is None else offset.reshape(())  # bnb: _absmax.mean() on the tensor's device
        code = dynamic_map().to(x.device)
        a2, s2 = blockwise(absmax - offset, 256)
        out.update(absmax=d_quantize(code.cpu(), s2.cpu()).to(x.device), nested_absmax=a2, nested_offset=offset.reshape(1), nested_quant_map=code)
    return out


def reconcile_offset(name, t, x, bs, qtype, ref):
    """
    bnb's double-quant offset is _absmax.mean() on the tensor's device, and torch's float32 mean is not the same
    function on every device: the CPU sums with a cascade of vector partial sums and divides by n, CUDA reduces in a
    tree and multiplies by 1/n. Peft.NET wrote the vectors on the CPU, so on CUDA the port's offset may differ from
    C#'s in the last bit while the CPU mean of the same absmax equals C#'s exactly. This checks exactly that and lets
    main recompute the rest of the nested state (codes, nested absmax, dequantised values) on the device from C#'s
    offset, so those are still compared bit for bit.
    """
    mine = t[f"{name}.nested_offset"].float().reshape(())
    dev_off = ref["nested_offset"].float().reshape(()).cpu()
    cpu_off = blockwise(x.cpu(), bs)[0].mean()
    ulp = (torch.nextafter(mine, torch.tensor(float("inf"))) - mine).item()
    if torch.equal(dev_off, mine):
        return 0
    # a summation-order difference: a few ulp of the mean (one ulp of the float32 sum of n values is n/2..n ulp of it / n)
    ok = torch.equal(cpu_off, mine) and abs((dev_off - mine).item()) <= 16 * ulp
    print(f"{'note' if ok else 'FAIL'} {name}: offset = absmax.mean() on {x.device.type}: {dev_off.item():.9g}, on the CPU: "
          f"{cpu_off.item():.9g}, C# (CPU): {mine.item():.9g} ({abs((dev_off - mine).item()) / ulp:.0f} ulp); the nested "
          f"state is recomputed on {x.device.type} from C#'s offset")
    return 0 if ok else 1


def dequantize_4bit(packed, absmax, qtype, bs, shape, dtype, nested=None):
    b = packed.reshape(-1).long()
    codes = torch.stack([b >> 4, b & 15], 1).reshape(-1)[: torch.Size(shape).numel()]
    if qtype == "nf4":
        table = torch.tensor(NF4, dtype=torch.float32, device=packed.device)
    else:
        mag = torch.tensor(FP4_LUT, dtype=torch.float32, device=packed.device)
        table = torch.cat([mag, -mag])
    if nested is not None:
        a2, off, code = nested
        v = code[absmax.long()]
        n = v.numel()
        pad = (-n) % 256
        absmax = (torch.cat([v, v.new_zeros(pad)]).view(-1, 256) * a2.unsqueeze(1)).reshape(-1)[:n] + off
    vals = table[codes]
    n = vals.numel()
    pad = (-n) % bs
    out = (torch.cat([vals, vals.new_zeros(pad)]).view(-1, bs) * absmax.unsqueeze(1)).reshape(-1)[:n]
    return out.to(dtype).view(shape)


MM_DEQUANT_CONST = struct.unpack("f", struct.pack("f", 6.200012e-05))[0]  # kdequant_mm_int32_fp16's float literal
INV_127 = 7.874015718698502e-3                                              # int8_vectorwise_dequant


def int8_vectorwise_quant(a16, threshold=0.0):
    """bnb int8_vectorwise_quant (torch backend; the CUDA kernel differs only by __fdividef): a16 float16 [rows, cols]."""
    absa = a16.abs()
    cols = None
    if threshold > 0:
        outliers = absa >= threshold
        absa = absa.masked_fill(outliers, 0)     # outliers do not count towards the row absmax
        if outliers.any():
            cols = torch.argwhere(outliers.any(dim=0)).view(-1)
    stats = absa.amax(1).float()
    q = torch.round(a16.float() * (127.0 / stats.unsqueeze(-1)))  # torch: 127.0 / t == t.reciprocal() * 127
    q = torch.nan_to_num(q, nan=0.0).to(torch.int8)                # a zero row: 0 * inf; __float2int_rn(NaN) = 0
    if cols is not None:
        q[:, cols] = 0
    return q, stats, cols


def matmul_8bit_lt(a, cb, scb, bias, threshold):
    """MatMul8bitLt.forward (has_fp16_weights=False) for a [N, in]: int8 activations, int32 product (exact in float64),
    kdequant_mm_int32_fp16 (float32 (acc*rs)*cs, one rounding of *1/127^2, float16 out, a non-float16 bias added to the
    float16 result), cast to a's dtype, outlier columns added by int8_mixed_scaled_mm's addmm."""
    ca, sca, cols = int8_vectorwise_quant(a.to(torch.float16), threshold)
    acc = ca.double() @ cb.double().t()
    v = acc.float() * sca.unsqueeze(1) * scb.float().unsqueeze(0)
    if bias is not None and bias.dtype == torch.float16:
        out16 = (v.double() * MM_DEQUANT_CONST + bias.double()).float().half()
    else:
        out16 = (v.double() * MM_DEQUANT_CONST).float().half()
        if bias is not None:
            out16 = (out16.float() + bias.float()).half()           # out.add_(bias) on the float16 output
    y = out16.to(a.dtype)
    if cols is not None and cols.numel():
        sub_b = ((cb[:, cols].float() * scb.view(-1, 1)) * INV_127).to(a.dtype).t()
        y = y.addmm(a[:, cols], sub_b)
    return y


class Int8LinearPort(torch.nn.Module):
    """bnb Linear8bitLt(has_fp16_weights=False, threshold) in evaluation, built from w [out, in] (Int8Params: w.to(float16))."""

    def __init__(self, w, bias, threshold):
        super().__init__()
        self.cb, self.scb, _ = int8_vectorwise_quant(w.to(torch.float16))
        self.b = None if bias is None else bias.detach().clone()
        self.threshold = threshold

    def forward(self, x):
        a = x.reshape(-1, x.shape[-1])
        y = matmul_8bit_lt(a, self.cb, self.scb, None if self.b is None else self.b.to(a.dtype), self.threshold)
        return y.view(*x.shape[:-1], -1)


def argmin_codes(scaled, qtype):  # bnb's default (pure torch) backend
    table = torch.tensor(NF4 if qtype == "nf4" else FP4_LUT + [-v for v in FP4_LUT], dtype=torch.float32, device=scaled.device)
    return torch.argmin((scaled.clamp(-1, 1).view(-1, 1) - table).abs(), dim=-1)


def main(root):
    path = f"{root}/quant/vectors.safetensors"
    with safe_open(path, "pt") as f:
        cases = f.metadata()["cases"].split(";")
    t = load_file(path)
    # CPU by default: absmax.mean() (the double-quant offset) is a reduction whose last bit depends on the device's
    # summation order; pass --cuda to run the port on the GPU (the codes and absmax must still match exactly).
    dev = "cuda" if "--cuda" in sys.argv and torch.cuda.is_available() else "cpu"
    failures = 0
    for case in cases:
        name, qtype, bs, nested = case.split(",")
        bs, nested = int(bs), nested == "1"
        x = t[f"{name}.input"].to(dev)
        ref = quantize_4bit(x, qtype, bs, nested)
        if nested and dev != "cpu":
            failures += reconcile_offset(name, t, x, bs, qtype, ref)
            ref = quantize_4bit(x, qtype, bs, nested, offset=t[f"{name}.nested_offset"].to(dev))
        for key, val in ref.items():
            mine = t[f"{name}.{key}"].to(dev)
            same = mine.shape == val.shape and torch.equal(mine.view(torch.uint8) if mine.dtype == torch.uint8 else mine, val.to(mine.dtype))
            if not same:
                diff = (mine.float() != val.float()).sum().item() if mine.shape == val.shape else "shape"
                print(f"FAIL {name}.{key}: {diff} elements differ")
                failures += 1
        nest = (ref["nested_absmax"], ref["nested_offset"], ref["nested_quant_map"]) if nested else None
        deq = dequantize_4bit(ref["packed"], ref["absmax"], qtype, bs, x.shape, x.dtype, nest)
        mine = t[f"{name}.dequant"].to(dev)
        if not torch.equal(deq, mine):
            print(f"FAIL {name}.dequant: max |diff| {(deq.float() - mine.float()).abs().max().item():.3g}")
            failures += 1
        _, scaled = blockwise(x, bs)
        codes_ref = torch.stack([ref["packed"].reshape(-1).long() >> 4, ref["packed"].reshape(-1).long() & 15], 1).reshape(-1)[: x.numel()]
        alt = argmin_codes(scaled, qtype)
        alt_diff = (alt != codes_ref).sum().item()
        print(f"ok   {name}: packed/absmax{'/nested' if nested else ''}/dequant equal; bnb default-backend argmin differs on {alt_diff} codes")
    failures += check_int8_vectors(t, meta_int8(path), dev)
    models_dir = sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else None
    failures += check_qlora_adapter(root, models_dir)
    failures += check_fixture_cosines(root, models_dir)
    failures += check_prequantized(root, models_dir)
    print("PASS" if failures == 0 else f"{failures} FAILURES")
    return 1 if failures else 0


def meta_int8(path):
    with safe_open(path, "pt") as f:
        cases = f.metadata().get("int8_cases", "")
    return [c.split(",") for c in cases.split(";") if c]


def check_int8_vectors(t, cases, dev):
    """Peft.NET's Linear8bit (evaluation) against the MatMul8bitLt port: CB / SCB bit for bit, the output exactly where
    no outlier column is involved (else within 1e-6 relative: the outlier addmm is a float32 BLAS sum)."""
    failures = 0
    for name, thr in cases:
        thr = float(thr)
        w, b, x = (t[f"{name}.{k}"].to(dev) for k in ("weight", "bias", "input"))
        layer = Int8LinearPort(w, b, thr)
        same_cb = torch.equal(layer.cb.cpu(), t[f"{name}.CB"]) and torch.equal(layer.scb.cpu(), t[f"{name}.SCB"])
        with torch.no_grad():
            y = layer(x).cpu()
        mine = t[f"{name}.output"]
        rel = ((y - mine).abs() / mine.abs().clamp_min(1)).max().item()
        _, _, cols = int8_vectorwise_quant(x.to(torch.float16), thr)
        ok = same_cb and (rel == 0 or (cols is not None and rel <= 1e-6))
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: CB/SCB {'equal' if same_cb else 'DIFFER'}; output max rel. diff {rel:.3g} "
              f"({0 if cols is None else cols.numel()} outlier columns)")
    return failures


def check_qlora_adapter(root, models_dir):
    """The C#-trained QLoRA adapter is a plain LoRA adapter: PEFT loads it on the float32 base, same logits as C#."""
    if models_dir is None:
        print("skip qlora-adapter: pass MODELS_DIR (the folder holding llama-tiny) as the second argument")
        return 1
    import json
    from transformers import AutoModelForCausalLM
    from peft import PeftModel
    adapter = f"{root}/quant/qlora-adapter"
    cfg = json.load(open(f"{adapter}/adapter_config.json"))
    if cfg.get("peft_type") != "LORA":
        print(f"FAIL qlora-adapter: peft_type {cfg.get('peft_type')}")
        return 1
    ref = load_file(f"{root}/quant/qlora-expected.safetensors")
    base = AutoModelForCausalLM.from_pretrained(f"{models_dir}/llama-tiny", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).eval()
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
    diff = (logits - ref["logits"]).abs().max().item()
    ok = diff <= 1e-4
    print(f"{'ok  ' if ok else 'FAIL'} qlora-adapter: PEFT on the float32 base vs C#: max |diff| {diff:.3g}")
    return 0 if ok else 1


def hf_modules_to_not_convert(model):
    """transformers' own default skips (get_keys_to_not_convert via HfQuantizer.get_modules_to_not_convert)."""
    try:
        from transformers.quantizers.base import HfQuantizer
        return HfQuantizer.get_modules_to_not_convert(model, None, getattr(model, "_keep_in_fp32_modules", None))
    except (ImportError, AttributeError, TypeError):
        from transformers.integrations import get_keys_to_not_convert
        return get_keys_to_not_convert(model)


def hf_should_convert(name, patterns):
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module
        return should_convert_module(name, patterns)
    except ImportError:  # older layout: a bare-name list compared by segment
        import re
        return not any(re.match(f"{k}\\.", name) or re.match(k, name) or name.endswith(k) for k in patterns)


def round_weight(w, mode):
    """What bnb stores for w [out, in], dequantised back to float32 (int8: bnb's int8_vectorwise_quant)."""
    if mode == "int8":
        cb, scb, _ = int8_vectorwise_quant(w.to(torch.float16))
        return cb.float() * scb.view(-1, 1) * INV_127
    qtype, nested = ("fp4", False) if mode == "hf-default" else ("nf4", mode == "nf4-dq")
    q = quantize_4bit(w, qtype, 64, nested)
    nest = (q["nested_absmax"], q["nested_offset"], q["nested_quant_map"]) if nested else None
    return dequantize_4bit(q["packed"], q["absmax"], qtype, 64, w.shape, torch.float32, nest)


def check_fixture_cosines(root, models_dir):
    """Each fixture in each bnb config: transformers' module selection, the port's rounding, logits and cosine vs C#."""
    import copy
    import json
    import os
    import transformers
    from transformers.pytorch_utils import Conv1D
    path = f"{root}/quant/fixture-cosines.json"
    if models_dir is None or not os.path.exists(path):
        print("skip fixture-cosines: pass MODELS_DIR and run the quant mode first")
        return 1
    meta = json.load(open(path))
    t = load_file(f"{root}/quant/fixture-cosines.safetensors")
    failures = 0
    print(f"{'model':14} {'mode':10} {'C# cosine':>10} {'port cosine':>11} {'all pos. C#':>11} {'all pos. port':>13} {'max|dlogits|':>12}")
    for name, modes in meta.items():
        cfg = transformers.AutoConfig.from_pretrained(f"{models_dir}/{name}")
        fp = getattr(transformers, cfg.architectures[0]).from_pretrained(f"{models_dir}/{name}", dtype=torch.float32).eval()
        ids, mask = t[f"{name}.input_ids"], t[f"{name}.attention_mask"]
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if f"{name}.token_type_ids" in t:  # exactly the inputs C# used (GPT-2 would add wte(token_type_ids) too)
            kwargs["token_type_ids"] = t[f"{name}.token_type_ids"]

        def logits_of(m):
            with torch.no_grad():
                o = m(**kwargs)
            return o.logits if getattr(o, "logits", None) is not None else torch.cat([o.start_logits, o.end_logits], -1)

        def cosine(a, b, unpadded=True):
            if a.dim() == 3 and unpadded:
                sel = mask.bool().unsqueeze(-1).expand_as(a)
                a, b = a[sel], b[sel]
            return torch.nn.functional.cosine_similarity(a.reshape(-1).double(), b.reshape(-1).double(), 0).item()

        ref = logits_of(fp)
        skip = hf_modules_to_not_convert(fp)
        for mode, res in modes.items():
            q = copy.deepcopy(fp)
            targets = sorted(n for n, m in q.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D)) and hf_should_convert(n, skip))
            if targets != res["modules"]:
                print(f"FAIL {name} {mode}: modules differ: HF-only {sorted(set(targets) - set(res['modules']))}, C#-only {sorted(set(res['modules']) - set(targets))}")
                failures += 1
            with torch.no_grad():
                for n, m in list(q.named_modules()):
                    if n not in targets:
                        continue
                    conv = isinstance(m, Conv1D)
                    w = m.weight.data.t().contiguous() if conv else m.weight.data   # [out, in]: HF transposes Conv1D first
                    if mode == "int8":
                        parent, _, child = n.rpartition(".")
                        setattr(q.get_submodule(parent) if parent else q, child,
                                Int8LinearPort(w.float(), m.bias, res.get("llm_int8_threshold", 6.0)))
                        continue
                    r = round_weight(w.float(), mode)
                    m.weight.data.copy_(r.t() if conv else r)
            mine = t[f"{name}.{mode}.logits"]
            port = logits_of(q)
            pc, cc = cosine(ref, port), res["cosine"]
            pa, ca = cosine(ref, port, unpadded=False), res.get("cosine_all_positions", float("nan"))
            d = (port - mine).abs()
            diff = (d[mask.bool()] if d.dim() == 3 else d).max().item()     # unpadded positions, as check_python.py
            ok = abs(pc - cc) <= 1e-4 and diff <= 1e-3
            failures += 0 if ok else 1
            print(f"{'ok  ' if ok else 'FAIL'} {name:14} {mode:10} {cc:10.5f} {pc:11.5f} {ca:11.5f} {pa:13.5f} {diff:12.3g}")
    return failures


def state_from_bnb(sd, prefix):
    """bnb's QuantState.from_dict on the serialised tensors of one layer: unpack the JSON tensor, keep the rest."""
    import json
    keys = [k for k in sd if k.startswith(prefix + "weight.quant_state.bitsandbytes__")]
    if len(keys) != 1:
        raise ValueError(f"{prefix}: expected one quant_state.bitsandbytes__nf4|fp4 tensor, found {keys}")
    qs = json.loads(bytes(sd[keys[0]].tolist()).decode("utf-8"))
    allowed = {"quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"}
    if not set(qs) <= allowed or keys[0].rsplit("__", 1)[1] != qs["quant_type"]:
        raise ValueError(f"{prefix}: quant_state fields {sorted(qs)} / key {keys[0]} are not bnb's")
    for k in ("absmax", "quant_map", "nested_absmax", "nested_quant_map"):
        if prefix + "weight." + k in sd:
            qs[k] = sd[prefix + "weight." + k]
    return qs


def dequant_from_state(packed, qs):
    """bnb dequantize_4bit with the file's own tables (quant_map, nested_quant_map), float32 [out, in]."""
    absmax = qs["absmax"]
    if "nested_absmax" in qs:
        v = qs["nested_quant_map"][absmax.long()]
        n, bs2 = v.numel(), qs["nested_blocksize"]
        v = torch.cat([v, v.new_zeros((-n) % bs2)]).view(-1, bs2) * qs["nested_absmax"].unsqueeze(1)
        absmax = v.reshape(-1)[:n] + float(qs["nested_offset"])
    shape = torch.Size(qs["shape"])
    b = packed.reshape(-1).long()
    codes = torch.stack([b >> 4, b & 15], 1).reshape(-1)[: shape.numel()]
    vals = qs["quant_map"].float()[codes]
    n, bs = vals.numel(), qs["blocksize"]
    out = (torch.cat([vals, vals.new_zeros((-n) % bs)]).view(-1, bs) * absmax.float().unsqueeze(1)).reshape(-1)[:n]
    return out.view(shape)


def check_prequantized(root, models_dir):
    """Folders Peft.NET saved quantised: transformers' config parsing, bnb's state layout, dequantised weights."""
    import glob
    import json
    import os
    import transformers
    failures = 0
    folders = sorted(d for d in glob.glob(f"{root}/quant/prequantized/*") if os.path.isdir(d))
    if not folders or models_dir is None:
        print("skip prequantized: run the quant mode first and pass MODELS_DIR")
        return 1
    for d in folders:
        label = os.path.basename(d)
        cfg = json.load(open(f"{d}/config.json"))
        qc = cfg["quantization_config"]
        conv1d = cfg["model_type"] == "gpt2"          # every quantised GPT-2 layer is a Conv1D (lm_head stays full precision)
        try:
            hf = transformers.BitsAndBytesConfig.from_dict(dict(qc)).to_dict()
            extra = {k: (qc.get(k), v) for k, v in hf.items() if k in qc and qc[k] != v}
            print(f"{'ok  ' if not extra else 'FAIL'} {label}: transformers BitsAndBytesConfig round trip{'' if not extra else ' differs: ' + str(extra)}")
            failures += 1 if extra else 0
        except Exception as e:  # BitsAndBytesConfig checks the bitsandbytes version in post_init: not installed here
            print(f"note {label}: BitsAndBytesConfig.from_dict needs bitsandbytes ({type(e).__name__}); keys checked by hand")
            expected = {"quant_method", "load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                        "bnb_4bit_compute_dtype", "bnb_4bit_quant_storage", "llm_int8_skip_modules", "llm_int8_threshold"}
            if not expected <= set(qc):
                print(f"FAIL {label}: quantization_config lacks {sorted(expected - set(qc))}")
                failures += 1
        sd = load_file(f"{d}/model.safetensors")
        mine = load_file(f"{d}.dequant.safetensors")
        with safe_open(f"{d}.dequant.safetensors", "pt") as f:
            source = f.metadata()["source"]
        src = load_file(f"{models_dir}/{source}/model.safetensors")
        worst_equal, worst_rel = 0.0, 0.0
        for layer, deq_cs in mine.items():
            p = layer + "."
            if qc.get("load_in_8bit"):
                w = sd[p + "weight"]
                if w.dtype != torch.int8 or p + "SCB" not in sd:
                    print(f"FAIL {label} {layer}: 8-bit layout (int8 weight + SCB) missing")
                    failures += 1
                    continue
                deq = w.float() * sd[p + "SCB"].float().view(-1, 1) * INV_127       # int8_vectorwise_dequant
            else:
                deq = dequant_from_state(sd[p + "weight"], state_from_bnb(sd, p))
            worst_equal = max(worst_equal, (deq - deq_cs).abs().max().item())
            key = next((k for k in (p + "weight", "transformer." + p + "weight") if k in src), None) or p + "weight"
            w32 = src[key].float() if key in src else None
            if w32 is not None:
                w32 = w32.t() if conv1d else w32                        # GPT-2 Conv1D stores [in, out]
                worst_rel = max(worst_rel, ((deq - w32).norm() / w32.norm()).item())
        ok = worst_equal <= 1e-6 and worst_rel < 0.25
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {len(mine)} layers read as bnb does; max |port - C# dequant| {worst_equal:.3g}, worst relative error to the float32 weights {worst_rel:.3f}")
    return failures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
