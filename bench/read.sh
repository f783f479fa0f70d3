#!/usr/bin/env bash
# Reading numbers: `read` beside the textbook pipeline (Otsu's threshold, connected components
# left to right, each read by the same model), on numbers of 2-6 digits composed from MNIST's
# test digits (gaps; touching or overlapping) and from pen drawings (gaps; touching;
# photographed on paper), 500 of each with a fixed seed; then single digits beside `predict`
# and the time to read a 6-digit number.
#
# usage: bench/read.sh MNIST_DIR [--model FILE] [--count N] [--seed S] [--split train]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=$(realpath "${1:?usage: bench/read.sh MNIST_DIR [flags]}")
shift
cargo run --release --quiet --manifest-path "$here/../Cargo.toml" --example read_numbers -- "$data" "$@"
