"""Records the reference values digitnn's tests compare against, from PyTorch.

usage: python scripts/make_fixtures.py        (needs torch, numpy and safetensors from pip)

Writes into tests/fixtures/:
  optimizers.json       parameters after each of 5 steps of SGD, momentum, Nesterov, Adam, AdamW
                        (with and without weight decay) on a fixed gradient sequence
  seed_cnn.pt           the same initial state_dict saved with torch.save, as the original project does
  seed_cnn.safetensors  the seed CNN's state_dict (torch.manual_seed(0) initialisation), a batch of
                        4 inputs and labels, PyTorch's logits, loss, parameter gradients, and the
                        parameters after one Adam step
The tests themselves never need PyTorch; rerun this only to change what is recorded.
"""
import json, os, numpy as np, torch, torch.nn as nn
from digit_classifier import DigitClassifier
from safetensors.torch import save_file

out = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures')
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

# --- optimizers ---------------------------------------------------------------------------
cases = []
init = torch.linspace(-1.5, 2.0, 7)
grads = [torch.sin(torch.arange(7.0) * (s + 1) * 0.7) * (0.5 + s) for s in range(5)]
configs = [
    ('sgd', dict(lr=0.1), {}),
    ('sgd', dict(lr=0.1, weight_decay=0.01), {}),
    ('momentum', dict(lr=0.05, momentum=0.9), {}),
    ('momentum', dict(lr=0.05, momentum=0.9, weight_decay=0.01), {}),
    ('nesterov', dict(lr=0.05, momentum=0.9, nesterov=True), {}),
    ('nesterov', dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), {}),
    ('adam', dict(lr=1e-3), {}),
    ('adam', dict(lr=0.01, weight_decay=0.1), {}),
    ('adamw', dict(lr=0.01, weight_decay=0.1), {}),
]
for name, kw, _ in configs:
    p = nn.Parameter(init.clone())
    cls = torch.optim.Adam if name == 'adam' else torch.optim.AdamW if name == 'adamw' else torch.optim.SGD
    opt = cls([p], **kw)
    steps = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        steps.append(p.detach().tolist())
    cases.append(dict(optimizer=name, lr=kw['lr'], momentum=kw.get('momentum', 0.0),
                      weight_decay=kw.get('weight_decay', 0.0), params_after_each_step=steps))
json.dump(dict(torch_version=torch.__version__, initial=init.tolist(), grads=[g.tolist() for g in grads],
               cases=cases), open(os.path.join(out, 'optimizers.json'), 'w'), indent=1)

# --- the seed CNN ---------------------------------------------------------------------------

torch.manual_seed(0)
m = DigitClassifier()
torch.save(m.state_dict(), os.path.join(out, 'seed_cnn.pt'))
# Inputs shaped like MNIST digits: mostly 0 with a bright random blob, values in [0, 1].
x = torch.zeros(4, 1, 28, 28)
x[:, :, 6:22, 8:20] = torch.rand(4, 1, 16, 12)
y = torch.tensor([3, 7, 0, 9])
state = {k: v.clone() for k, v in m.state_dict().items()}
logits = m(x)
loss = nn.CrossEntropyLoss()(logits, y)
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
opt.zero_grad(); loss.backward()
tensors = dict(state)
tensors.update({'input': x, 'labels': y.to(torch.float32), 'logits': logits.detach(), 'loss': loss.detach().reshape(1)})
tensors.update({'grad.' + k: p.grad.clone() for k, p in m.named_parameters()})
opt.step()
tensors.update({'adam1.' + k: p.detach().clone() for k, p in m.named_parameters()})
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, 'seed_cnn.safetensors'),
          metadata={'torch_version': torch.__version__})
print('wrote', out)
