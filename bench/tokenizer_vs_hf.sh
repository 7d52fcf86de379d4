#!/bin/sh
# Tokenizer speed, flow2 beside Hugging Face `tokenizers` on the same machine, file and text:
# load time of tokenizer.json and single-threaded encoding throughput, the whole text as one
# string and one call per line. Needs build/bench_tokenizer and `pip install tokenizers`.
# Usage: bench/tokenizer_vs_hf.sh [TOKENIZER_JSON] [SIZE_MB] [RUNS]
set -eu
cd "$(dirname "$0")/.."
tokenizer=${1:-tests/data/tokenizers/llama3_1/tokenizer.json}
size=${2:-5}
runs=${3:-5}
text=$(mktemp /tmp/flow2-bench-text.XXXXXX)
trap 'rm -f "$text"' EXIT
python3 bench/make_text.py "$text" "$size"
echo "tokenizer: $tokenizer"
echo "machine:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), one thread"
./build/bench_tokenizer "$tokenizer" "$text" --runs "$runs"
python3 bench/tokenizer_peer.py "$tokenizer" "$text" "$runs"
