"""Interop check, Python half: loads the folders Peft.NET wrote (see Program.cs) with transformers / peft /
tokenizers, recomputes the logits and ids, and compares them with what Peft.NET computed.

    python3 tools/Peft.Interop/check_python.py OUT_DIR

Exits non-zero if any folder fails to load or any value differs (logits: max |diff| > 1e-4 on unpadded positions;
token ids: exact)."""
import json
import os
import sys

import torch
from safetensors.torch import load_file
import transformers
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

root = sys.argv[1]
failures = []


def compare(name, model):
    exp = load_file(os.path.join(root, "expected", name + ".safetensors"))
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=exp["input_ids"], attention_mask=exp["attention_mask"]).logits
    mask = exp["attention_mask"].bool()
    if logits.dim() == 3 and logits.shape[1] > mask.shape[1]:
        # prompt tuning / P-tuning: the virtual positions come first and are always attended
        mask = torch.cat([torch.ones(mask.shape[0], logits.shape[1] - mask.shape[1], dtype=torch.bool), mask], 1)
    if logits.shape != exp["logits"].shape:
        print(f"FAIL {name:22s} logits shape {tuple(logits.shape)} vs C# {tuple(exp['logits'].shape)}")
        failures.append(name)
        return
    if logits.dim() == 3:
        diff = (logits - exp["logits"]).abs()[mask].max().item()
    else:
        diff = (logits - exp["logits"]).abs().max().item()
    ok = diff <= 1e-4
    print(f"{'OK  ' if ok else 'FAIL'} {name:22s} logits max|diff| = {diff:.2e}")
    if not ok:
        failures.append(name)


tasks = json.load(open(os.path.join(root, "expected", "tasks.json"), encoding="utf-8"))
for name in sorted(os.listdir(os.path.join(root, "models"))):
    path = os.path.join(root, "models", name)
    task = tasks.get(name, "SequenceClassification" if name.startswith("bert") else "CausalLM")
    cls = getattr(transformers, "AutoModelFor" + {"CausalLM": "CausalLM", "SequenceClassification": "SequenceClassification",
                                                   "TokenClassification": "TokenClassification", "MaskedLM": "MaskedLM"}[task])
    compare(name, cls.from_pretrained(path))

from peft import PeftModel  # noqa: E402

adapters = json.load(open(os.path.join(root, "expected", "adapters.json"), encoding="utf-8"))
for name in sorted(os.listdir(os.path.join(root, "adapters"))):
    cls = getattr(transformers, "AutoModelFor" + adapters[name]["task"])
    base = cls.from_pretrained(os.path.join(root, "models", adapters[name]["base"]))
    compare(name, PeftModel.from_pretrained(base, os.path.join(root, "adapters", name)))

# The Trainer checkpoint written by C#: HF's TrainerState / TrainingArguments accept its JSON, PEFT loads its adapter
# (same logits as C#), safetensors loads its optimizer state.
import dataclasses  # noqa: E402
from transformers import TrainerState, TrainingArguments  # noqa: E402

ckpt = os.path.join(root, "trainer", "checkpoint-3")
try:
    state = TrainerState.load_from_json(os.path.join(ckpt, "trainer_state.json"))
    assert state.global_step == 3 and sum("loss" in e for e in state.log_history) == 3, state
    saved_args = json.load(open(os.path.join(ckpt, "training_args.json"), encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    extra = set(saved_args) - fields - {"dataloader_shuffle", "device"}  # .NET extensions
    assert not extra, f"training_args.json keys unknown to transformers: {sorted(extra)}"
    TrainingArguments(**{k: v for k, v in saved_args.items() if k in fields and v is not None})
    optimizer = load_file(os.path.join(ckpt, "optimizer.safetensors"))
    assert any(k.endswith(".exp_avg") for k in optimizer), sorted(optimizer)
    compare("trainer-checkpoint", PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(os.path.join(root, "models", "opt-tiny")), ckpt))
    print("OK   trainer checkpoint: TrainerState, TrainingArguments, optimizer state load")
except Exception as e:  # noqa: BLE001
    print(f"FAIL trainer checkpoint: {e!r}")
    failures.append("trainer checkpoint")

# A LoRA adapter trained by C# on llama-tiny in bfloat16 (PEFT's autocast_adapter_dtype): the file holds F32 tensors,
# PEFT (autocast_adapter_dtype=True, its default) keeps float32 adapter weights on the bfloat16 base, and the logits
# equal C#'s up to bfloat16 rounding (both add the float32 adapter term in float32 and round once per layer).
bf16_dir = os.path.join(root, "bf16")
try:
    saved = load_file(os.path.join(bf16_dir, "lora-adapter", "adapter_model.safetensors"))
    assert saved and all(t.dtype == torch.float32 for t in saved.values()), {k: t.dtype for k, t in saved.items()}
    base = AutoModelForCausalLM.from_pretrained(os.path.join(root, "models", "llama-tiny"), dtype=torch.bfloat16)
    pm = PeftModel.from_pretrained(base, os.path.join(bf16_dir, "lora-adapter"))
    lora = {n: p.dtype for n, p in pm.named_parameters() if "lora_" in n}
    other = {n: p.dtype for n, p in pm.named_parameters() if "lora_" not in n}
    assert lora and all(d == torch.float32 for d in lora.values()), lora
    assert all(d == torch.bfloat16 for d in other.values()), {n: d for n, d in other.items() if d != torch.bfloat16}
    exp = load_file(os.path.join(bf16_dir, "expected.safetensors"))
    pm.eval()
    with torch.no_grad():
        logits = pm(input_ids=exp["input_ids"], attention_mask=exp["attention_mask"]).logits
    assert logits.dtype == torch.bfloat16, logits.dtype
    diff = (logits.float() - exp["logits"]).abs()
    equal = (diff == 0).float().mean().item()
    # one bfloat16 ulp of the logit (2^-7 relative) is what a different summation order in a kernel can cost
    tol = (exp["logits"].abs().clamp(min=1.0) * 2.0 ** -7)
    ok = bool((diff <= tol).all())
    print(f"{'OK  ' if ok else 'FAIL'} bf16-base LoRA         {len(lora)} float32 adapter tensors, logits max|diff| = {diff.max().item():.2e}, {equal:.1%} bit-equal")
    if not ok:
        failures.append("bf16-base LoRA")
except Exception as e:  # noqa: BLE001
    print(f"FAIL bf16-base LoRA: {e!r}")
    failures.append("bf16-base LoRA")

tok_exp = json.load(open(os.path.join(root, "expected", "tokenizers.json"), encoding="utf-8"))
for name, rows in tok_exp["ids"].items():
    tok = AutoTokenizer.from_pretrained(os.path.join(root, "models", name))
    got = [tok(t, add_special_tokens=True)["input_ids"] for t in tok_exp["texts"]]
    ok = got == rows
    print(f"{'OK  ' if ok else 'FAIL'} tokenizer {name:12s} ids {'equal' if ok else f'differ: python {got} vs C# {rows}'}")
    if not ok:
        failures.append("tokenizer " + name)

print("interop:", "all equal" if not failures else f"{len(failures)} failed: {failures}")
sys.exit(1 if failures else 0)
