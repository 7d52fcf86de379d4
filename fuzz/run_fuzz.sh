#!/bin/sh
# Usage: run_fuzz.sh FUZZER SEED_DIR WORK_CORPUS_DIR SECONDS
# Fuzzes for SECONDS from the seeds; any crash, leak or sanitizer report fails the run.
set -eu
fuzzer=$1 seeds=$2 corpus=$3 seconds=$4
mkdir -p "$corpus"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$corpus/" "$corpus" "$seeds"
