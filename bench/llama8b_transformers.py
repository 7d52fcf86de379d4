#!/usr/bin/env python3
"""The Hugging Face side of bench/llama8b_vs_transformers.sh, on one GPU.

  llama8b_transformers.py make DIR      writes a Llama-3.1-8B-shaped checkpoint with random bf16
                                        weights in the Hub's layout (sharded safetensors with an
                                        index, config.json with llama3 RoPE scaling, a byte-level
                                        tokenizer.json so that flow2 convert can write a GGUF)
  llama8b_transformers.py measure DIR [--4bit] [--reps N]
                                        loads DIR with transformers onto the GPU (warm page cache)
                                        and measures what flow2 bench measures: warm load, pp512
                                        (one forward over 512 random ids), tg128 (128 greedy
                                        single-token steps from a fresh cache, batch 1), peak GPU
                                        memory; prints one JSON object
--4bit quantizes at load with bitsandbytes (NF4, bf16 compute) when it is installed, and prints
{"status": "not installed"} when it is not.
"""
import argparse
import json
import os
import statistics
import sys
import time

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "use_cache": True, "vocab_size": 128256,
}


def byte_level_tokenizer():
    """A byte-level BPE vocabulary of the 256 bytes (GPT-2's byte-to-character map) and Llama 3's
    special tokens; the other ids stay unused. Random weights need no real vocabulary, but
    flow2 convert writes one into the GGUF."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
                 list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    vocab = {chars[b]: b for b in range(256)}
    special = {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128009: "<|eot_id|>"}
    added = [{"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, text in special.items()]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }


def make(directory):
    import torch
    import transformers

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    start = time.perf_counter()
    config = transformers.AutoConfig.from_pretrained(directory)
    # Random initialization on the GPU (transformers' own init: normal(0, 0.02), norms 1) is
    # seconds; on the CPU it would be minutes.
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    model.save_pretrained(directory, max_shard_size="5GB")
    # save_pretrained writes the config as this transformers version spells it; keep the Hub's.
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    with open(os.path.join(directory, "tokenizer.json"), "w") as f:
        json.dump(byte_level_tokenizer(), f)
    save_s = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory)
               if name.endswith(".safetensors"))
    print(json.dumps({"init_s": init_s, "save_s": save_s, "checkpoint_bytes": size}), flush=True)


def read_files(directory):
    """Reads every weight file once so that loads find them in the page cache (warm)."""
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            with open(os.path.join(directory, name), "rb") as f:
                while f.read(1 << 26):
                    pass


def measure(directory, four_bit, reps):
    import torch
    import transformers

    result = {"tool": "transformers " + transformers.__version__, "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(0), "weights": "bf16"}
    kwargs = {"dtype": torch.bfloat16, "device_map": "cuda"}
    if four_bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as error:
            print(json.dumps({"status": "not installed", "reason": str(error)}), flush=True)
            return
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
        result["weights"] = "bnb nf4"
    torch.zeros(1, device="cuda")  # CUDA's start-up is not part of a load (flow2's neither)
    read_files(directory)
    loads = []
    model = None
    # One load that is not counted, as flow2 bench's cold load comes before its warm ones: the
    # first from_pretrained of a process also pays for imports and the allocator's start.
    for rep in range(reps + 1):
        del model
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        start = time.perf_counter()
        model = transformers.AutoModelForCausalLM.from_pretrained(directory, **kwargs)
        torch.cuda.synchronize()
        if rep > 0:
            loads.append(time.perf_counter() - start)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (1, 512), generator=generator).cuda()
    prompt_s, gen_s = [], []
    with torch.no_grad():
        # Warm-up, not counted (flow2 bench runs one pass first too).
        model(prompt[:, :16])
        model(prompt)
        past = transformers.DynamicCache()
        token = prompt[:, :1]
        for _ in range(8):
            out = model(token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        for _ in range(reps):
            start = time.perf_counter()
            # Forward and the first token read back (flow2's time to first token).
            logits = model(prompt, use_cache=False).logits
            int(logits[0, -1].argmax())
            prompt_s.append(time.perf_counter() - start)
        for _ in range(reps):
            # As flow2 bench's tg: a fresh cache, one start token, then 128 single-token steps,
            # each step's greedy token fed back.
            token = prompt[:, :1]
            past = transformers.DynamicCache()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(128):
                out = model(token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            int(token[0, 0])
            gen_s.append(time.perf_counter() - start)
    result.update({
        "status": "ok",
        # Means over the repetitions, as flow2 bench reports them.
        "warm_load_s": statistics.fmean(loads), "warm_load_values_s": loads,
        "prompt_tok_s": 512 / statistics.fmean(prompt_s), "prompt_values_s": prompt_s,
        "gen_tok_s": 128 / statistics.fmean(gen_s), "gen_values_s": gen_s,
        # Memory the allocator held from the device, as flow2's pool high-water mark counts it.
        "gpu_peak_bytes": torch.cuda.max_memory_reserved(),
        "gpu_peak_allocated_bytes": torch.cuda.max_memory_allocated(),
    })
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["make", "measure"])
    parser.add_argument("directory")
    parser.add_argument("--4bit", dest="four_bit", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.action == "make":
        make(args.directory)
    else:
        measure(args.directory, args.four_bit, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
