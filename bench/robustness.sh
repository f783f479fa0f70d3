#!/usr/bin/env bash
# Test accuracy of models on MNIST's test digits, clean and under each corruption of
# `digitnn eval --corrupt` (rotate, shift, scale, elastic, blur, thick, thin, noise, contrast, photo).
#
# usage: bench/robustness.sh MNIST_DIR MODEL...    (MODEL: a model file, or "builtin")
# Prints one markdown table: a row per model, a column per corruption.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=$(realpath "${1:?usage: bench/robustness.sh MNIST_DIR MODEL...}")
shift
[ $# -gt 0 ] || { echo "usage: bench/robustness.sh MNIST_DIR MODEL..." >&2; exit 2; }
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
digitnn="$here/../target/release/digitnn"
corruptions=(none rotate shift scale elastic blur thick thin noise contrast photo)
echo "| model | $(IFS='|'; echo "${corruptions[*]}" | sed 's/|/ | /g') |"
echo "|---$(printf '|---%.0s' "${corruptions[@]}")|"
for model in "$@"; do
  # An empty directory as the working directory, so that "builtin" cannot pick up a
  # digit_model.safetensors lying around.
  empty=$(mktemp -d)
  if [ "$model" = builtin ]; then model_args=(); name="built-in best"; else model_args=(--model "$(realpath "$model")"); name=$(basename "$model"); fi
  row="| $name |"
  for c in "${corruptions[@]}"; do
    if [ "$c" = none ]; then corrupt=(); else corrupt=(--corrupt "$c"); fi
    accuracy=$(cd "$empty" && "$digitnn" eval --data "$data" "${model_args[@]}" "${corrupt[@]}" --json 2>/dev/null \
      | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["accuracy"] * 100))')
    row="$row $accuracy |"
  done
  echo "$row"
  rmdir "$empty"
done
