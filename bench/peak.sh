#!/usr/bin/env bash
# This CPU's fp32 and bf16 arithmetic peak (bench/peak.c), for bench/scaling.sh's PEAK_GFLOPS.
# Needs gcc and an x86-64 CPU with AVX-512 (and AVX512-BF16 for the second line: without it that
# line dies of an illegal instruction).
#
# usage: bench/peak.sh [THREADS=2]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 -pthread "$here/peak.c" -o "$out/peak"
"$out/peak" "${1:-2}"
