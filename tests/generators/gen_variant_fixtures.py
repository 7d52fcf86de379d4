"""Reference fixtures for config variants the shared fixtures do not cover.

Builds tiny random-weight models with Hugging Face transformers (eager attention, fp32, CPU) and
writes, per model, config.json, model.safetensors and reference.safetensors holding
input_ids [2, 24], logits [2, 24, vocab], gen_prompt [1, 8] and gen_output [1, 24] (greedy, no
stop token), the layout of tests/data/models/*/reference.safetensors.

Usage: python3 gen_variant_fixtures.py OUTDIR
"""
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

VOCAB = 320
OUT = sys.argv[1]

LLAMA_BASE = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
    "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
    "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
}

VARIANTS = {
    # head_dim decoupled from hidden/heads, biases everywhere, linear RoPE scaling
    "tiny-llama-linear-bias": dict(LLAMA_BASE, head_dim=24, attention_bias=True, mlp_bias=True,
                                   rope_scaling={"rope_type": "linear", "factor": 4.0}),
    # dynamic NTK scaling that kicks in past 16 positions (the sequences have 24)
    "tiny-llama-dynamic": dict(LLAMA_BASE, max_position_embeddings=16,
                               rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
    # Mistral with a sliding window shorter than the sequence
    "tiny-mistral-window": dict(LLAMA_BASE, architectures=["MistralForCausalLM"],
                                model_type="mistral", sliding_window=6, rope_theta=1e6),
    # Qwen2 whose second layer uses a sliding window
    "tiny-qwen2-window": dict(LLAMA_BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                              use_sliding_window=True, sliding_window=5, max_window_layers=1,
                              rms_norm_eps=1e-6),
    # GPT-2 with an explicit inner size, erf GELU, per-layer score scaling and an untied head
    "tiny-gpt2-variant": {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": VOCAB,
        "n_embd": 48, "n_head": 4, "n_layer": 3, "n_positions": 64, "n_ctx": 64, "n_inner": 80,
        "activation_function": "gelu", "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": True, "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2,
    },
}
# (source variant, storage dtype): the same weights rounded to a half type.
HALF_COPIES = {"tiny-llama-f16": ("tiny-llama-linear-bias", torch.float16)}


def randomize(model, is_gpt2, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            shape = parameter.shape
            if parameter.ndim == 1:
                is_norm_weight = ("norm" in name or "ln_" in name) and name.endswith("weight")
                value = 1.0 + 0.2 * torch.randn(shape, generator=generator) if is_norm_weight \
                    else 0.1 * torch.randn(shape, generator=generator)
            elif "embed" in name or "wte" in name or "wpe" in name:
                value = torch.randn(shape, generator=generator) * (0.5 if "wpe" in name else 1.0)
            else:
                is_conv1d = is_gpt2 and any(part in name for part in ("c_attn", "c_proj", "c_fc"))
                fan_in = shape[0] if is_conv1d else shape[1]  # Conv1D stores [in, out]
                value = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
            parameter.copy_(value)


def build(config_dict, seed):
    config = AutoConfig.for_model(**{k: v for k, v in config_dict.items() if k != "architectures"})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    randomize(model, config_dict["model_type"] == "gpt2", seed)
    return model.eval()


def write(name, model, config_dict, dtype, seed):
    directory = os.path.join(OUT, name)
    os.makedirs(directory, exist_ok=True)
    with torch.no_grad():  # the reference is computed from the rounded weights (not buffers)
        for parameter in model.parameters():
            parameter.copy_(parameter.to(dtype).to(torch.float32))
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if config_dict["tie_word_embeddings"]:
        state.pop("lm_head.weight", None)
    state = {k: v for k, v in state.items() if not k.endswith((".attn.bias", ".masked_bias"))}
    save_file(state, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    config = dict(config_dict)
    config["torch_dtype"] = {torch.float32: "float32", torch.float16: "float16"}[dtype]
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)

    generator = torch.Generator().manual_seed(seed + 7)
    ids = torch.randint(4, VOCAB, (2, 24), generator=generator)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
        prompt = ids[:1, :8].clone()
        model.generation_config.eos_token_id = None  # pure greedy: never stop early
        greedy = GenerationConfig(do_sample=False, max_new_tokens=16, eos_token_id=None,
                                  pad_token_id=0, bos_token_id=None)
        output = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                generation_config=greedy)
    assert output.shape == (1, 24), output.shape
    # Reloading from disk must give the same logits: the files say what the model is.
    reloaded = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                    attn_implementation="eager")
    with torch.no_grad():
        error = (reloaded(input_ids=ids).logits - logits).abs().max().item()
    assert error < 1e-4, f"{name}: reload differs by {error}"
    save_file({"input_ids": ids, "logits": logits.contiguous(), "gen_prompt": prompt.contiguous(),
               "gen_output": output.contiguous()},
              os.path.join(directory, "reference.safetensors"))
    print(f"{name}: logit std {logits.std().item():.3f}, generated {output[0, 8:].tolist()}")


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    print("transformers", transformers.__version__, "torch", torch.__version__)
    built = {}
    for seed, (name, config_dict) in enumerate(VARIANTS.items()):
        built[name] = build(config_dict, 100 + seed)
        write(name, built[name], config_dict, torch.float32, 100 + seed)
    for name, (source, dtype) in HALF_COPIES.items():
        write(name, build(VARIANTS[source], 100 + list(VARIANTS).index(source)),
              VARIANTS[source], dtype, 200)


if __name__ == "__main__":
    main()
