"""The `fast` preset's PyTorch reference: the fastest published MNIST recipe, written from its
description, on the CPU.

usage: python bench/pytorch_fast.py MNIST_DIR [--seed S] [--threads T]
  One epoch of Conv(1->24, 5x5) -> max-pool 2 -> ReLU -> Conv(24->32, 3x3) -> max-pool 2 -> ReLU
  -> Linear(800->256) -> ReLU -> Linear(256->10); Adam lr 0.01, betas (0.7, 0.9); OneCycle (no
  momentum cycling, so the betas stay as given); batch 256; shuffled; the data held in memory
  as float tensors before the clock starts. Prints one line:
  `train_seconds S test_accuracy A` (training time excludes loading the data and evaluation).
Reads the raw IDX files (train-images-idx3-ubyte, ...) from MNIST_DIR. Needs torch and numpy.
"""
import argparse, time, numpy as np, torch, torch.nn as nn

ap = argparse.ArgumentParser()
ap.add_argument('dir'); ap.add_argument('--seed', type=int, default=0); ap.add_argument('--threads', type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

def idx(path, off):
    return np.frombuffer(open(path, 'rb').read()[off:], np.uint8)

X = torch.tensor(idx(f'{a.dir}/train-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)
Y = torch.tensor(idx(f'{a.dir}/train-labels-idx1-ubyte', 8).astype(np.int64))
Xt = torch.tensor(idx(f'{a.dir}/t10k-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)
Yt = torch.tensor(idx(f'{a.dir}/t10k-labels-idx1-ubyte', 8).astype(np.int64))

model = nn.Sequential(nn.Conv2d(1, 24, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(24, 32, 3), nn.MaxPool2d(2),
                      nn.ReLU(), nn.Flatten(), nn.Linear(800, 256), nn.ReLU(), nn.Linear(256, 10))
batch = 256
steps = (len(X) + batch - 1) // batch
opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.7, 0.9))
schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=steps, cycle_momentum=False)
loss_fn = nn.CrossEntropyLoss()

start = time.perf_counter()
order = torch.randperm(len(X))
for i in range(0, len(X), batch):
    j = order[i:i + batch]
    loss = loss_fn(model(X[j]), Y[j])
    opt.zero_grad(); loss.backward(); opt.step(); schedule.step()
seconds = time.perf_counter() - start

model.eval()
with torch.no_grad():
    correct = sum((model(Xt[i:i + 1000]).argmax(1) == Yt[i:i + 1000]).sum().item() for i in range(0, len(Xt), 1000))
print(f'train_seconds {seconds:.3f} test_accuracy {100 * correct / len(Xt):.2f}', flush=True)
