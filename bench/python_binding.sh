#!/usr/bin/env bash
# What the Python binding costs: the same work through `digitnn` (the CLI / the library) and
# through the Python package, interleaved, medians of ROUNDS rounds.
#
# usage: PYTHON=/path/to/venv/bin/python bench/python_binding.sh MNIST_DIR [ROUNDS]
#   PYTHON  a python with the package installed (pip install ./python); default python3
# Prints: training images/s of one seed-recipe epoch on the first 20,000 images (`digitnn train
# --epochs 1 --limit 20000` against `digitnn.train(epochs=1, limit=20000)`), and single-image
# latency of the seed CNN (`digitnn bench`'s library figure against `model.predict(image)` from
# Python, best of 5 batches of 500 calls; the Python figure includes making the numpy results).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${1:?usage: bench/python_binding.sh MNIST_DIR [ROUNDS]}
rounds=${2:-3}
python=${PYTHON:-python3}
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
digitnn="$here/../target/release/digitnn"
out=$(mktemp -d)
for i in $(seq "$rounds"); do
  "$digitnn" train --data "$data" --epochs 1 --limit 20000 --json --out "$out/cli.safetensors" 2>/dev/null >> "$out/cli_train.jsonl"
  "$python" - "$data" >> "$out/py_train.txt" <<'PY'
import sys, digitnn
_, history = digitnn.train(sys.argv[1], epochs=1, limit=20000)
print(history[-1]["images_per_sec"])
PY
  "$digitnn" bench --json --steps 20 2>/dev/null >> "$out/bench.jsonl"
  "$python" - "$out/cli.safetensors" "$data" >> "$out/py_single.txt" <<'PY'
import sys, time, digitnn
model = digitnn.Model.load(sys.argv[1])
images = digitnn.datasets.mnist(sys.argv[2])[2][:500]
best = float("inf")
for _ in range(5):
    started = time.perf_counter()
    for image in images:
        model.predict(image)
    best = min(best, (time.perf_counter() - started) / len(images) * 1e6)
print(best)
PY
done
"$python" - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
med = statistics.median
cli_train = med(json.loads(l)["images_per_sec"] for l in open(f"{out}/cli_train.jsonl"))
py_train = med(float(l) for l in open(f"{out}/py_train.txt"))
lib_single = med(json.loads(l)["infer_single_latency_us"] for l in open(f"{out}/bench.jsonl"))
bench_train = med(json.loads(l)["train_images_per_sec"] for l in open(f"{out}/bench.jsonl"))
py_single = med(float(l) for l in open(f"{out}/py_single.txt"))
print(f"{'':40}{'digitnn':>10}{'Python':>10}{'ratio':>8}")
print(f"{'training images/s (1 epoch, 20k images)':40}{cli_train:>10.0f}{py_train:>10.0f}{py_train / cli_train:>7.2f}x")
print(f"{'(digitnn bench, synthetic steps)':40}{bench_train:>10.0f}")
print(f"{'single-image latency (us)':40}{lib_single:>10.0f}{py_single:>10.0f}{py_single / lib_single:>7.2f}x")
PY
