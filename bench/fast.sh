#!/usr/bin/env bash
# The `fast` and `sprint` presets against PyTorch's run of the published recipe, in the same run,
# per seed (PyTorch, fast, sprint, seed after seed), and the means over the seeds.
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
  "$digitnn" train --data "$data" --preset sprint --seed "$seed" --threads "$threads" --json \
    --out "$out/sprint.safetensors" 2>/dev/null | tail -n 1 >> "$out/sprint.jsonl"
done
"$python" - "$out" <<'PY'
import json, re, statistics, sys
out = sys.argv[1]
torch = [tuple(map(float, m)) for m in re.findall(r'train_seconds ([\d.]+) test_accuracy ([\d.]+)', open(f'{out}/torch.txt').read())]
def runs(name):
    return [(r['seconds'], 100 * r['test_accuracy']) for r in map(json.loads, open(f'{out}/{name}.jsonl'))]
fast, sprint = runs('digitnn'), runs('sprint')
mean = statistics.mean
print(f"{'seed':>6}{'PyTorch s':>12}{'PyTorch %':>12}{'fast s':>10}{'fast %':>10}{'sprint s':>10}{'sprint %':>10}")
for seed, ((ts, ta), (fs, fa), (ss, sa)) in enumerate(zip(torch, fast, sprint)):
    print(f"{seed:>6}{ts:>12.2f}{ta:>12.2f}{fs:>10.2f}{fa:>10.2f}{ss:>10.2f}{sa:>10.2f}")
columns = [mean(x[i] for x in xs) for xs in (torch, fast, sprint) for i in (0, 1)]
print(f"{'mean':>6}{columns[0]:>12.2f}{columns[1]:>12.2f}{columns[2]:>10.2f}{columns[3]:>10.2f}{columns[4]:>10.2f}{columns[5]:>10.2f}")
print(f"fast {columns[0] / columns[2]:.2f}x and sprint {columns[0] / columns[4]:.2f}x faster than PyTorch; "
      f"sprint's lowest accuracy {min(a for _, a in sprint):.2f}%")
PY
rm -rf "$out"
