#!/usr/bin/env bash
# flow2 beside llama.cpp's llama-bench on the same GGUF file, threads and machine:
# prompt processing of 512 tokens (pp512) and generation of 128 (tg128), tokens/s.
#   bench/vs_llama_cpp.sh [MODEL.gguf] [RUNS]
# MODEL defaults to the default model; llama-bench comes from $LLAMA_BENCH or PATH. One way to
# get it without network access to GitHub: `pip download --no-deps --no-binary :all:
# llama-cpp-python`, unpack, then in vendor/llama.cpp `cmake -B build -DLLAMA_CURL=OFF &&
# cmake --build build --target llama-bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-$(scripts/fetch-default-model)}"
runs="${2:-5}"
threads="$(nproc)"
llama_bench="${LLAMA_BENCH:-$(command -v llama-bench || true)}"

[[ -x build/bench_forward ]] || cmake --build build --target bench_forward -j"$threads"
echo "== flow2 ($(build/flow2 version | head -1)), $threads threads, median of $runs runs"
OMP_NUM_THREADS="$threads" build/bench_forward --model "$model" --runs "$runs"
if [[ -n "$llama_bench" ]]; then
  echo "== llama.cpp llama-bench, $threads threads, mean ± sd of $runs runs"
  "$llama_bench" -m "$model" -p 512 -n 128 -r "$runs" -t "$threads"
else
  echo "== llama-bench not found (set LLAMA_BENCH=/path/to/llama-bench): flow2 figures only"
fi
