#!/usr/bin/env bash
# The `fast` preset against PyTorch's run of the published recipe, in the same run, per seed
# (PyTorch then digitnn, seed after seed), and the means over the seeds.
#
# usage: PYTHON=/path/to/venv/bin/python bench/fast.sh MNIST_DIR [SEEDS] [THREADS]
#   PYTHON   a python with torch and numpy; default python3
#   SEEDS    how many seeds, 0.. (default 3); THREADS for both (default 2)
# Both print the training time without data loading or evaluation: PyTorch's from
# bench/pytorch_fast.py, digitnn's the epoch's "seconds" from `digitnn train --preset fast --json`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${1:?usage: bench/fast.sh MNIST_DIR [SEEDS] [THREADS]}
seeds=${2:-3}
threads=${3:-2}
python=${PYTHON:-python3}
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
digitnn="$here/../target/release/digitnn"
out=$(mktemp -d)
for seed in $(seq 0 $((seeds - 1))); do
  "$python" "$here/pytorch_fast.py" "$data" --seed "$seed" --threads "$threads" >> "$out/torch.txt"
  "$digitnn" train --data "$data" --preset fast --seed "$seed" --threads "$threads" --json \
    --out "$out/fast.safetensors" 2>/dev/null | tail -n 1 >> "$out/digitnn.jsonl"
done
"$python" - "$out" <<'PY'
import json, re, statistics, sys
out = sys.argv[1]
torch = [tuple(map(float, m)) for m in re.findall(r'train_seconds ([\d.]+) test_accuracy ([\d.]+)', open(f'{out}/torch.txt').read())]
ours = [json.loads(l) for l in open(f'{out}/digitnn.jsonl')]
ours = [(r['seconds'], 100 * r['test_accuracy']) for r in ours]
mean = statistics.mean
print(f"{'seed':>6}{'PyTorch s':>12}{'PyTorch %':>12}{'digitnn s':>12}{'digitnn %':>12}")
for seed, ((ts, ta), (ds, da)) in enumerate(zip(torch, ours)):
    print(f"{seed:>6}{ts:>12.2f}{ta:>12.2f}{ds:>12.2f}{da:>12.2f}")
ts, ta, ds, da = (mean(x[i] for x in xs) for xs, i in [(torch, 0), (torch, 1), (ours, 0), (ours, 1)])
print(f"{'mean':>6}{ts:>12.2f}{ta:>12.2f}{ds:>12.2f}{da:>12.2f}   digitnn {ts / ds:.1f}x faster")
PY
rm -rf "$out"
