"""End-to-end interop check against real PyTorch on the whole MNIST test set.

usage: python scripts/check_interop.py DIGITNN_BINARY MNIST_DIR     (needs torch, numpy, pillow)

1. Trains the original DigitClassifier briefly in PyTorch and saves it with torch.save, as the
   original project does; `digitnn predict --model digit_model.pt` must give PyTorch's prediction
   for every one of the 10,000 test images, and `digitnn eval` PyTorch's accuracy.
2. `digitnn convert` .pt -> .safetensors -> .pt; the result must load with
   torch.load(weights_only=True) and load_state_dict(strict=True) and give identical logits.
3. `digitnn export --onnx`; if onnxruntime is installed, its logits must match PyTorch's to 1e-5
   relative to each logit's size (trained logits reach ~30; cargo test checks 1e-5 absolute with tract).
"""
import json, os, subprocess, sys, tempfile
import numpy as np, torch, torch.nn as nn
from digit_classifier import DigitClassifier
from PIL import Image

binary, data = sys.argv[1], sys.argv[2]
def idx(name, off):
    return np.frombuffer(open(os.path.join(data, name), 'rb').read()[off:], np.uint8)


torch.manual_seed(1)
X = torch.tensor(idx('train-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28)[:6400].astype(np.float32) / 255)
Y = torch.tensor(idx('train-labels-idx1-ubyte', 8)[:6400].astype(np.int64))
test_u8 = idx('t10k-images-idx3-ubyte', 16).reshape(-1, 28, 28)
Xt = torch.tensor(test_u8.reshape(-1, 1, 28, 28).astype(np.float32) / 255)
m = DigitClassifier(); opt = torch.optim.Adam(m.parameters(), lr=1e-3)
for i in range(0, 6400, 32):
    opt.zero_grad(); nn.CrossEntropyLoss()(m(X[i:i + 32]), Y[i:i + 32]).backward(); opt.step()
m.eval()
with torch.no_grad():
    logits = torch.cat([m(Xt[i:i + 1000]) for i in range(0, 10000, 1000)])
torch_pred = logits.argmax(1).numpy()
work = tempfile.mkdtemp()
pt = os.path.join(work, 'digit_model.pt')
torch.save(m.state_dict(), pt)

paths = []
for i, img in enumerate(test_u8):
    p = os.path.join(work, f'{i:05d}.png'); Image.fromarray(img).save(p); paths.append(p)
out = subprocess.run([binary, 'predict', '--model', pt, '--raw', '--json', *paths], capture_output=True, text=True, check=True).stdout
ours = np.array([json.loads(l)['digit'] for l in out.splitlines()])
same = int((ours == torch_pred).sum())
print(f'1. predictions identical to PyTorch on {same} of {len(paths)} test images')
labels = idx('t10k-labels-idx1-ubyte', 8)
ev = json.loads(subprocess.run([binary, 'eval', '--model', pt, '--data', data, '--json'], capture_output=True, text=True, check=True).stdout)
print(f'   accuracy: digitnn eval {ev["accuracy"]:.4f}, PyTorch {(torch_pred == labels).mean():.4f}')
assert same == len(paths)

st, back = os.path.join(work, 'm.safetensors'), os.path.join(work, 'back.pt')
subprocess.run([binary, 'convert', pt, st], check=True)
subprocess.run([binary, 'convert', st, back], check=True)
m2 = DigitClassifier(); m2.load_state_dict(torch.load(back, weights_only=True), strict=True); m2.eval()
with torch.no_grad():
    diff = (m2(Xt[:1000]) - logits[:1000]).abs().max().item()
print(f'2. .pt -> .safetensors -> .pt loads in torch (weights_only, strict); max logit difference {diff}')
assert diff == 0.0

onnx = os.path.join(work, 'm.onnx')
subprocess.run([binary, 'export', '--onnx', onnx, '--model', st], check=True)
try:
    import onnxruntime as ort
    run = ort.InferenceSession(onnx).run(['logits'], {'image': Xt[:1000].numpy()})[0]
    want = logits[:1000].numpy()
    err = np.abs(run - want).max()
    rel = (np.abs(run - want) / np.maximum(1.0, np.abs(want))).max()
    print(f'3. ONNX in onnxruntime {ort.__version__}: max logit difference {err:.2e} '
          f'(relative to the logit {rel:.2e}; logits up to {np.abs(want).max():.1f})')
    # Two different runtimes summing 17,000-term dot products of trained weights differ in the
    # last bits; relative to the logit's size they agree to 1e-5.
    assert rel <= 1e-5
except ImportError:
    print('3. onnxruntime not installed: ONNX checked by cargo test (tract) only')
