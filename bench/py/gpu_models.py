"""The two random-init model shapes of ../shared/perf/hf_gpu_bench.py (same configs, bf16 on CUDA; OPT also as
hf_lora_bench.py builds it on the CPU), shared by the bench/py probes so that each builds the model the anchors time."""
import torch
from transformers import OPTConfig, OPTForCausalLM, LlamaConfig, LlamaForCausalLM


def build(name, device="cuda", dtype=torch.bfloat16, dropout=0.0):
    """opt125m (facebook/opt-125m's config; dropout 0 as the GPU anchor, 0.1 as the CPU one) or llama1b (a 1.1B Llama
    shape), on device in dtype."""
    if name == "opt125m":
        m = OPTForCausalLM(OPTConfig(vocab_size=50272, hidden_size=768, num_hidden_layers=12, ffn_dim=3072, num_attention_heads=12,
                                     max_position_embeddings=2048, word_embed_proj_dim=768, dropout=dropout))
    elif name == "llama1b":
        m = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096))
    else:
        raise SystemExit(f"unknown model {name!r}: opt125m or llama1b")
    return m.to(device, dtype=dtype)
