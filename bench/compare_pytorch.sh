#!/usr/bin/env bash
# digitnn against PyTorch on this machine, interleaved (A B A B ...), medians of ROUNDS runs.
#
# usage: PYTHON=/path/to/venv/bin/python bench/compare_pytorch.sh MNIST_DIR [ROUNDS] [THREADS]
#   PYTHON   a python with torch and numpy (pip install torch numpy); default python3
#   ROUNDS   interleaved rounds (default 3); THREADS for both (default 2)
#   PRECISION=bf16  both in bf16: digitnn --precision bf16, PyTorch under autocast (--bf16)
# Prints one table: training images/s (batch 32, 20 warm-up + 100 timed steps), batched
# inference images/s (batch 1000) and single-image latency, with the ratio digitnn / PyTorch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${1:?usage: bench/compare_pytorch.sh MNIST_DIR [ROUNDS] [THREADS]}
rounds=${2:-3}
threads=${3:-2}
python=${PYTHON:-python3}
precision=${PRECISION:-fp32}
torch_flags=()
[ "$precision" = bf16 ] && torch_flags=(--bf16)
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
digitnn="$here/../target/release/digitnn"
out=$(mktemp -d)
for i in $(seq "$rounds"); do
  "$digitnn" bench --json --threads "$threads" --precision "$precision" >> "$out/digitnn.jsonl"
  OMP_NUM_THREADS=$threads "$python" "$here/pytorch_seed.py" "$data" --steps 100 --infer "${torch_flags[@]}" >> "$out/torch.txt"
done
"$python" - "$out" <<'PY'
import json, re, statistics, sys
out = sys.argv[1]
d = [json.loads(l) for l in open(f'{out}/digitnn.jsonl')]
t = open(f'{out}/torch.txt').read()
torch = {
    'train': [float(x) for x in re.findall(r'train 100 steps batch \d+: (\d+) img/s', t)],
    'batch': [float(x) for x in re.findall(r'infer batch1000 (\d+) img/s', t)],
    'single': [float(x) for x in re.findall(r'infer single (\d+) us/img', t)],
}
ours = {
    'train': [r['train_images_per_sec'] for r in d],
    'batch': [r['infer_batch_images_per_sec'] for r in d],
    'single': [r['infer_single_latency_us'] for r in d],
}
med = statistics.median
print(f"{len(d)} interleaved rounds, {d[0]['threads']} threads, digitnn kernels: {d[0]['isa']}, precision {d[0]['precision']}")
print(f"{'':28}{'digitnn':>10}{'PyTorch':>10}{'ratio':>8}")
for key, label, better_low in [('train', 'train images/s (batch 32)', False), ('batch', 'infer images/s (batch 1000)', False), ('single', 'single-image latency (us)', True)]:
    a, b = med(ours[key]), med(torch[key])
    ratio = b / a if better_low else a / b
    print(f"{label:28}{a:>10.0f}{b:>10.0f}{ratio:>7.2f}x")
PY
