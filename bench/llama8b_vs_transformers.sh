#!/usr/bin/env bash
# flow2 beside Hugging Face transformers on one GPU, on the same Llama-3.1-8B-shaped checkpoint
# with random bf16 weights in the Hub's layout (sharded safetensors, llama3 RoPE scaling): warm
# load, pp512, tg128 and peak GPU memory of each; then flow2 on a Q4_0 GGUF that `flow2 convert`
# writes from the same files (and transformers in 4 bits where bitsandbytes is installed).
#   bench/llama8b_vs_transformers.sh [WORK_DIR]
# WORK_DIR (default /tmp/flow2-llama8b) holds the checkpoint (16 GB, reused when present), the
# GGUF (4.3 GB) and results/: one JSON file per run, their logs and summary.md. flow2 is $FLOW2,
# else build-cuda/flow2 (built when missing). REPS (default 3) repetitions of each measurement.
# Needs python3 with torch and transformers (bench/llama8b_transformers.py) and a CUDA GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/flow2-llama8b}"
reps="${REPS:-3}"
model="$work/Llama-3.1-8B-random"
gguf="$work/Llama-3.1-8B-random-Q4_0.gguf"
results="$work/results"
mkdir -p "$results"
started=$(date +%s)
step() { echo "== $(( $(date +%s) - started )) s: $*" >&2; }

flow2="${FLOW2:-build-cuda/flow2}"
if [[ ! -x "$flow2" ]]; then
  step "building $flow2"
  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release >"$results/configure.log" 2>&1 &&
    cmake --build build-cuda -j"$(nproc)" --target flow2_cli >"$results/build.log" 2>&1 ||
    { tail -30 "$results/build.log"; exit 1; }
fi

if [[ ! -f "$model/model.safetensors.index.json" ]]; then
  step "writing the checkpoint: random bf16, Hub layout (about 25 s)"
  python3 bench/llama8b_transformers.py make "$model" | tee "$results/make.json" ||
    { echo "could not write the checkpoint"; exit 1; }
fi

# run NAME COMMAND...: stdout to results/NAME.json, stderr to results/NAME.log; a failure is
# recorded in the JSON and the script goes on.
run() {
  local name=$1
  shift
  step "$name"
  if ! "$@" >"$results/$name.json" 2>"$results/$name.log"; then
    tail -5 "$results/$name.log" >&2
    printf '{"status": "failed", "log": "%s"}\n' "$results/$name.log" >"$results/$name.json"
  fi
}

flow2_bench() {
  "$flow2" bench --model "$1" --device cuda --json --prompt-tokens 512 --gen-tokens 128 \
    --reps "$reps"
}

run transformers_bf16 python3 bench/llama8b_transformers.py measure "$model" --reps "$reps"
run transformers_4bit python3 bench/llama8b_transformers.py measure "$model" --4bit --reps "$reps"
run flow2_bf16 flow2_bench "$model"
if [[ ! -f "$gguf" ]]; then
  step "flow2 convert --type q4_0"
  convert_start=$(date +%s%N)
  if "$flow2" convert --model "$model" --out "$gguf" --type q4_0 >"$results/convert.log" 2>&1; then
    echo "{\"convert_ms\": $(( ($(date +%s%N) - convert_start) / 1000000 ))}" >"$results/convert.json"
  else
    tail -5 "$results/convert.log"
  fi
fi
run flow2_q4_0 flow2_bench "$gguf"
step "done"

gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
python3 - "$results" "$gpu" "$("$flow2" version | head -1)" <<'PY' | tee "$results/summary.md"
import json, os, sys

results, gpu, version = sys.argv[1:4]

def load(name):
    try:
        with open(os.path.join(results, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        return {"status": "failed", "reason": str(error)}

rows = []
for name, weights in [("transformers_bf16", None), ("transformers_4bit", None)]:
    r = load(name)
    if r.get("status") != "ok":
        rows.append((name.replace("_", " "), weights or "", r.get("status", "?") + ": " +
                     r.get("reason", r.get("log", ""))))
        continue
    rows.append((r["tool"], r["weights"], r["warm_load_s"], r["prompt_tok_s"], r["gen_tok_s"],
                 r["gpu_peak_bytes"] / 1e9))
for name, weights in [("flow2_bf16", "bf16"), ("flow2_q4_0", "Q4_0 GGUF")]:
    r = load(name)
    try:
        b = r["models"][0]["backends"][0]
        # pp from the time to first token: the forward and the read-back of the first token,
        # so that work still queued on the GPU is counted (transformers' pp is timed alike).
        rows.append((version, weights, b["warm_load_s"]["mean"], 512 / b["ttft_s"]["mean"],
                     b["gen_tok_s"]["mean"], (b["gpu_peak_bytes"] or 0) / 1e9))
    except (KeyError, IndexError, TypeError):
        rows.append(("flow2", weights, r.get("status", "?") + ": " + r.get("log", "")))

print(f"GPU: {gpu}\n")
print("| tool | weights | warm load s | pp512 tok/s | tg128 tok/s | peak GPU GB |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for row in rows:
    if len(row) == 3:
        print(f"| {row[0]} | {row[1]} | {row[2]} | | | |")
    else:
        print(f"| {row[0]} | {row[1]} | {row[2]:.2f} | {row[3]:.0f} | {row[4]:.1f} | {row[5]:.1f} |")
convert = load("convert")
if "convert_ms" in convert:
    print(f"\nflow2 convert --type q4_0: {convert['convert_ms'] / 1000:.1f} s")
print("\nMeans over the repetitions; pp512 is 512 / time to first token (forward + read-back). "
      "Peak GPU: flow2's pool high-water mark plus its fixed buffers; transformers' "
      "max_memory_reserved. Cold loads (page cache dropped) are in flow2_*.json.")
PY
