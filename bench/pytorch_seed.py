# Copied from the project's shared reference (the PyTorch recipe digitnn is measured against), so that
# bench/compare_pytorch.sh works from a checkout alone. Identical in behaviour, except that --bf16
# also applies to --infer (autocast around the inference passes).
"""Reference: the seed's CNN trained exactly as the seed does, in PyTorch on the CPU.

usage: python pytorch_seed.py MNIST_DIR [--steps N] [--epochs E] [--shuffle] [--bf16]
  --steps N   time N training steps (after 20 warm-up steps) and print images/s
  --epochs E  full training for E epochs, then test accuracy and wall time
Reads the raw IDX files (train-images-idx3-ubyte, ...) from MNIST_DIR.
"""
import argparse, time, numpy as np, torch, torch.nn as nn

def idx(path, off):
    return np.frombuffer(open(path, 'rb').read()[off:], np.uint8)

def seed_model():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 22 * 22, 10))

ap = argparse.ArgumentParser()
ap.add_argument('dir'); ap.add_argument('--steps', type=int, default=0)
ap.add_argument('--epochs', type=int, default=0); ap.add_argument('--shuffle', action='store_true')
ap.add_argument('--bf16', action='store_true'); ap.add_argument('--batch', type=int, default=32)
ap.add_argument('--infer', action='store_true')
a = ap.parse_args()
torch.manual_seed(0)
X = torch.tensor(idx(f'{a.dir}/train-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)
Y = torch.tensor(idx(f'{a.dir}/train-labels-idx1-ubyte', 8).astype(np.int64))
Xt = torch.tensor(idx(f'{a.dir}/t10k-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)
Yt = torch.tensor(idx(f'{a.dir}/t10k-labels-idx1-ubyte', 8).astype(np.int64))
m = seed_model(); opt = torch.optim.Adam(m.parameters(), lr=1e-3); lossf = nn.CrossEntropyLoss()
print(f'torch {torch.__version__} threads {torch.get_num_threads()}', flush=True)

def step(x, y):
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=a.bf16):
        loss = lossf(m(x), y)
    opt.zero_grad(); loss.backward(); opt.step(); return loss

B = a.batch
if a.infer:
    m.eval()
    # --bf16 measures inference under autocast too (the shared reference measured it in fp32 only).
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=a.bf16):
        for i in range(0, 2000, 1000): m(Xt[i:i + 1000])
        t = time.perf_counter()
        for i in range(0, 10000, 1000): m(Xt[i:i + 1000])
        dt = time.perf_counter() - t
        print(f'infer batch1000 {10000 / dt:.0f} img/s')
        t = time.perf_counter()
        for i in range(200): m(Xt[i:i + 1])
        dt = time.perf_counter() - t
        print(f'infer single {dt / 200 * 1e6:.0f} us/img')
if a.steps:
    for i in range(20): step(X[i * B:(i + 1) * B], Y[i * B:(i + 1) * B])
    t = time.perf_counter()
    for i in range(20, 20 + a.steps): step(X[i * B:(i + 1) * B], Y[i * B:(i + 1) * B])
    dt = time.perf_counter() - t
    print(f'train {a.steps} steps batch {B}: {a.steps * B / dt:.0f} img/s, {dt / a.steps * 1e3:.1f} ms/step, epoch est {60000 / (a.steps * B / dt):.0f} s', flush=True)
if a.epochs:
    t0 = time.perf_counter()
    for e in range(a.epochs):
        order = torch.randperm(60000) if a.shuffle else torch.arange(60000)
        for i in range(0, 60000, B):
            j = order[i:i + B]; loss = step(X[j], Y[j])
        m.eval()
        with torch.no_grad(): acc = (torch.cat([m(Xt[i:i + 1000]).argmax(1) for i in range(0, 10000, 1000)]) == Yt).float().mean().item()
        m.train()
        print(f'epoch {e + 1} last-batch loss {loss.item():.5f} test acc {acc:.4f} elapsed {time.perf_counter() - t0:.0f} s', flush=True)
