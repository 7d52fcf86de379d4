#!/usr/bin/env python3
"""The transformers side of `flow2 report --compare transformers`: loads the same model with
Hugging Face transformers (PyTorch) and measures what flow2 bench measures - load time, peak
resident memory, prompt speed (one forward over N random tokens) and generation speed (greedy
generate() of N tokens after a one-token prompt, KV cache, batch 1) - as mean and sample
standard deviation over the repetitions. Prints one JSON object on stdout (library messages go
to stderr). Missing packages give {"status": "not installed", "reason": ...}.

usage: peer_transformers.py MODEL [--prompt-tokens 512] [--gen-tokens 128] [--reps 5]
                            [--threads N] [--seed 0]
MODEL is a Hugging Face directory or a .gguf file (transformers dequantizes GGUF to float32 on
load, with the gguf and accelerate packages).
"""
import argparse
import importlib
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model: never reach for the network
os.environ.setdefault("TQDM_DISABLE", "1")  # GGUF loading's progress bars, on stderr


def stats(values):
    return {"mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    needed = ["torch", "transformers"]
    if args.model.endswith(".gguf"):
        needed += ["gguf", "accelerate"]  # transformers' GGUF loading needs both
    for package in needed:
        try:
            importlib.import_module(package)
        except ImportError as error:
            print(json.dumps({"status": "not installed",
                              "reason": f"python package {package}: {error}"}))
            return 0
    import torch
    import transformers
    transformers.utils.logging.disable_progress_bar()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    path = args.model
    kwargs = {}
    if path.endswith(".gguf"):
        kwargs["gguf_file"] = os.path.basename(path)
        path = os.path.dirname(os.path.abspath(path))
    device = "cpu"

    def load():
        start = time.perf_counter()
        model = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)
        model.eval()
        return model, time.perf_counter() - start

    model, cold = load()
    loads = []
    for _ in range(args.reps):
        del model
        model, seconds = load()
        loads.append(seconds)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, vocab, (1, args.prompt_tokens), generator=generator)
    eos = model.config.eos_token_id
    pad = (eos[0] if isinstance(eos, list) else eos) or 0

    def generate(count):
        # min_new_tokens keeps an end-of-sequence token from stopping it early.
        return model.generate(prompt[:, :1], attention_mask=torch.ones_like(prompt[:, :1]),
                              max_new_tokens=count, min_new_tokens=count, do_sample=False,
                              use_cache=True, pad_token_id=pad)

    prompt_s, ttft_s, gen_s = [], [], []
    with torch.no_grad():
        model(prompt[:, :16])  # warm-up, not counted
        if args.gen_tokens:
            generate(min(args.gen_tokens, 4))
        for _ in range(args.reps):
            start = time.perf_counter()
            logits = model(prompt, use_cache=False).logits
            prompt_s.append(time.perf_counter() - start)
            int(logits[0, -1].argmax())
            ttft_s.append(time.perf_counter() - start)
            if args.gen_tokens:
                start = time.perf_counter()
                generated = generate(args.gen_tokens)
                gen_s.append(time.perf_counter() - start)
                assert generated.shape[1] == 1 + args.gen_tokens, generated.shape
    result = {
        "status": "ok",
        "framework": "transformers " + transformers.__version__,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "reps": args.reps,
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "cold_load_s": cold,
        "warm_load_s": stats(loads),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "prompt_s": stats(prompt_s),
        "prompt_tok_s": stats([args.prompt_tokens / s for s in prompt_s]),
        "ttft_s": stats(ttft_s),
    }
    if args.gen_tokens:
        result["gen_s"] = stats(gen_s)
        result["gen_tok_s"] = stats([args.gen_tokens / s for s in gen_s])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
