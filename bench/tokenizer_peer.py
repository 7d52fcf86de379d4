"""The Hugging Face `tokenizers` side of bench_tokenizer: load time and single-threaded encoding
throughput on the same tokenizer.json and text. Usage: tokenizer_peer.py TOKENIZER_JSON TEXT [RUNS]"""
import os
import statistics
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # one thread, like flow2's figure
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402

path, text_path = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
text = open(text_path, encoding="utf-8", newline="").read()  # keep \r as flow2 does
lines = text.split("\n")
loads, wholes, per_line, batched = [], [], [], []
whole_count = line_count = 0
for _ in range(runs):
    start = time.perf_counter()
    tok = tokenizers.Tokenizer.from_file(path)
    loads.append(time.perf_counter() - start)
    start = time.perf_counter()
    whole_count = len(tok.encode(text, add_special_tokens=False).ids)
    wholes.append(time.perf_counter() - start)
    start = time.perf_counter()
    line_count = sum(len(tok.encode(line, add_special_tokens=False).ids) for line in lines)
    per_line.append(time.perf_counter() - start)
    # encode_batch avoids Python's per-call overhead (still one thread: RAYON_NUM_THREADS=1)
    start = time.perf_counter()
    batch_count = sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
    batched.append(time.perf_counter() - start)
megabytes = len(text.encode("utf-8")) / 1e6
print(f"{'hf ' + tokenizers.__version__:<10} {statistics.median(loads) * 1e3:>8.1f} "
      f"{megabytes / statistics.median(wholes):>14.2f} {megabytes / statistics.median(per_line):>14.2f} "
      f"{whole_count:>12} {line_count:>12} {megabytes:>8.2f}")
print(f"{'hf batch':<10} {'':>8} {'':>14} {megabytes / statistics.median(batched):>14.2f} "
      f"{'':>12} {batch_count:>12} {megabytes:>8.2f}")
