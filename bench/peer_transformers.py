#!/usr/bin/env python3
"""The transformers side of `flow2 report --compare transformers`: loads the same model with
Hugging Face transformers (PyTorch) and measures what flow2 bench measures - load time, peak
resident memory, prompt speed (one forward over N random tokens) and generation speed (N greedy
steps with the KV cache, batch 1) - as mean and sample standard deviation over the repetitions.
Prints one JSON object. Missing packages give {"status": "not installed", "reason": ...}.

usage: peer_transformers.py MODEL [--prompt-tokens 512] [--gen-tokens 128] [--reps 5]
                            [--threads N] [--seed 0]
MODEL is a Hugging Face directory or a .gguf file (transformers dequantizes GGUF on load).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


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
    try:
        import torch
        import transformers
    except ImportError as error:
        print(json.dumps({"status": "not installed", "reason": str(error)}))
        return 0
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

    try:
        model, cold = load()
    except ImportError as error:  # e.g. the gguf package for .gguf files
        print(json.dumps({"status": "not installed", "reason": str(error)}))
        return 0
    loads = []
    for _ in range(args.reps):
        del model
        model, seconds = load()
        loads.append(seconds)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, vocab, (1, args.prompt_tokens), generator=generator)
    prompt_s, ttft_s, gen_s = [], [], []
    with torch.no_grad():
        model(prompt[:, :16])  # warm-up, not counted
        for _ in range(args.reps):
            start = time.perf_counter()
            logits = model(prompt, use_cache=False).logits
            prompt_s.append(time.perf_counter() - start)
            int(logits[0, -1].argmax())
            ttft_s.append(time.perf_counter() - start)
            token = prompt[:, :1]
            past = None
            start = time.perf_counter()
            for _ in range(args.gen_tokens):
                out = model(token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            gen_s.append(time.perf_counter() - start)
    result = {
        "status": "ok",
        "framework": "transformers " + transformers.__version__,
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
        "gen_s": stats(gen_s),
        "gen_tok_s": stats([args.gen_tokens / s for s in gen_s] if args.gen_tokens else [0.0]),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
