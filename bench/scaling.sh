#!/usr/bin/env bash
# Training throughput of the seed CNN at several batch sizes and thread counts, with GFLOP/s, the
# share of the machine's fp32 peak and peak memory while training. Each line is one
# `digitnn bench --json` run. GFLOP/s count the direct convolution's FLOPs (174 MFLOP per
# training image): with Winograd the engine does fewer, so the share can pass 100%.
#
# usage: [PRECISION=bf16] bench/scaling.sh [PEAK_GFLOPS=515] [STEPS=30]
#   PEAK_GFLOPS: this machine's fp32 arithmetic peak on the threads used (bench/peak.sh measures
#   it: 515 on the 2 cores of the AMD EPYC (Zen 5) development machine; 416 was PyTorch's
#   4096x4096 product on the earlier Intel Xeon), or its bf16 peak with PRECISION=bf16 (965).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
peak=${1:-515}
steps=${2:-30}
precision=${PRECISION:-fp32}
cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin digitnn
echo "| threads | batch | train images/s | GFLOP/s (direct) | share of peak | training peak RSS (MiB) |"
echo "|---|---|---|---|---|---|"
for threads in 1 2; do
  for batch in 1 8 32 128 512; do
    "$here/target/release/digitnn" bench --json --threads "$threads" --batch-size "$batch" --steps "$steps" --precision "$precision" |
      python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| {r['threads']} | {r['batch_size']} | {r['train_images_per_sec']:.0f} | {r['train_gflops']:.0f} | {100 * r['train_gflops'] / $peak:.0f}% | {r['train_peak_rss_mib']:.0f} |\")"
  done
done
