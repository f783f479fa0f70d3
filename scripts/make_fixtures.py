"""Records the reference values digitnn's tests compare against, from PyTorch.

usage: python scripts/make_fixtures.py        (needs torch, numpy and safetensors from pip)

Writes into tests/fixtures/:
  optimizers.json       parameters after each of 5 steps of SGD, momentum, Nesterov, Adam, AdamW
                        (with and without weight decay) on a fixed gradient sequence
  seed_cnn.pt           the same initial state_dict saved with torch.save, as the original project does
  seed_cnn.safetensors  the seed CNN's state_dict (torch.manual_seed(0) initialisation), a batch of
                        4 inputs and labels, PyTorch's logits, loss, parameter gradients, and the
                        parameters after one Adam step
  best_cnn.safetensors  the `best` architecture (BatchNorm; dropout p=0 so training is deterministic)
                        with random BatchNorm weights and running statistics: a batch of 4, the
                        training-mode logits, loss, gradients and updated running statistics, and
                        the evaluation-mode logits after that update; its architecture in metadata
  best_cnn.pt           its initial state_dict saved with torch.save (int64 num_batches_tracked)
  reader_cnn.safetensors  the `reader` architecture (best's, wider, with an eleventh output, "not a digit",
                        dropout p=0): its state_dict, a batch of 4 with one image labelled 10 (not
                        a digit), the training-mode logits, the loss with label smoothing 0.1 (as
                        the reader preset trains) and the gradients of the last layer
  line_cnn.safetensors  a small line reader (convolutions, BatchNorm, max-pool, `columns`, a 1x1
                        and two 3x3 convolutions over the columns, flatten) on 4 strips 16x24 with targets of 0-4 digits: the
                        training-mode scores, each strip's CTC loss (blank 10) and its gradient
                        with respect to the scores, and the parameter gradients of the mean loss
The tests themselves never need PyTorch; rerun this only to change what is recorded.
"""
import json, os, numpy as np, torch, torch.nn as nn
from digit_classifier import DigitClassifier, Sequential
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

# --- the best CNN (BatchNorm) -----------------------------------------------------------------
# Architecture::best_cnn() with the dropout at p=0 (the tests check that this is that list).
def conv(i, o):
    return dict(type='conv2d', in_channels=i, out_channels=o, kernel_size=3, stride=1, padding=1)
def bn(c):
    return dict(type='batch_norm2d', num_features=c, eps=1e-5, momentum=0.1)
relu, pool = dict(type='relu'), dict(type='max_pool2d', kernel_size=2, stride=2)
best = ([conv(1, 32), bn(32), relu, conv(32, 32), bn(32), relu, pool,
         conv(32, 64), bn(64), relu, conv(64, 64), bn(64), relu, pool,
         conv(64, 128), bn(128), relu, pool,
         dict(type='dropout', p=0.0), dict(type='flatten'), dict(type='linear', in_features=128 * 9, out_features=10)])
torch.manual_seed(1)
m = Sequential(best)
with torch.no_grad():
    for module in m.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.3, 0.3)
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(7)
torch.save(m.state_dict(), os.path.join(out, 'best_cnn.pt'))
state = {k: v.clone() for k, v in m.state_dict().items()}
x = torch.zeros(4, 1, 28, 28)
x[:, :, 6:22, 8:20] = torch.rand(4, 1, 16, 12)
y = torch.tensor([3, 7, 0, 9])
m.train()
logits = m(x)
loss = nn.CrossEntropyLoss()(logits, y)
loss.backward()
tensors = {k: v.to(torch.float32) for k, v in state.items()}
tensors.update({'input': x, 'labels': y.to(torch.float32), 'logits': logits.detach(), 'loss': loss.detach().reshape(1)})
tensors.update({'grad.' + k: p.grad.clone() for k, p in m.named_parameters()})
tensors.update({'trained.' + k: v.to(torch.float32).clone() for k, v in m.state_dict().items() if 'running' in k or 'num_batches' in k})
m.eval()
with torch.no_grad():
    tensors['eval_logits'] = m(x)
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, 'best_cnn.safetensors'),
          metadata={'torch_version': torch.__version__, 'architecture': json.dumps(best)})
# --- the reader CNN: best's network with 48, 96 and 192 channels and an eleventh output, "not a
# digit" (Architecture::reader_cnn() with the dropout at p=0) -----------------------------------
reader = ([conv(1, 48), bn(48), relu, conv(48, 48), bn(48), relu, pool,
           conv(48, 96), bn(96), relu, conv(96, 96), bn(96), relu, pool,
           conv(96, 192), bn(192), relu, pool,
           dict(type='dropout', p=0.0), dict(type='flatten'), dict(type='linear', in_features=192 * 9, out_features=11)])
torch.manual_seed(2)
m = Sequential(reader)
state = {k: v.clone() for k, v in m.state_dict().items()}
y = torch.tensor([3, 10, 0, 9])
m.train()
logits = m(x)
loss = nn.CrossEntropyLoss(label_smoothing=0.1)(logits, y)
loss.backward()
last = [k for k, _ in m.named_parameters()][-2:]
tensors = {k: v.to(torch.float32) for k, v in state.items()}
tensors.update({'input': x, 'labels': y.to(torch.float32), 'logits': logits.detach(), 'loss': loss.detach().reshape(1)})
tensors.update({'grad.' + k: p.grad.clone() for k, p in m.named_parameters() if k in last})
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, 'reader_cnn.safetensors'),
          metadata={'torch_version': torch.__version__, 'architecture': json.dumps(reader)})
# --- a line reader: per-column scores and the CTC loss ---------------------------------------
k1 = lambda i, o: dict(type='conv2d', in_channels=i, out_channels=o, kernel_size=1, stride=1, padding=0)
# The head as Architecture::line_cnn's: a 1x1 convolution per column, then padded 3x3 ones on the
# one-row sequence of columns (each step sees its neighbours).
line = [conv(1, 4), bn(4), relu, pool, conv(4, 6), relu, pool, dict(type='columns'), k1(6 * 4, 8), relu,
        conv(8, 8), relu, conv(8, 11), dict(type='flatten')]
torch.manual_seed(3)
m = Sequential(line)
state = {k: v.clone() for k, v in m.state_dict().items()}
x = torch.rand(4, 1, 16, 24)
targets = [[3, 1], [7, 7, 2], [], [0, 5, 5, 9]]
m.train()
scores = m(x)
scores.retain_grad()
steps = 6
log_probs = scores.reshape(4, 11, steps).permute(2, 0, 1).log_softmax(2)
flat = torch.tensor([d for t in targets for d in t], dtype=torch.long)
lengths = torch.tensor([len(t) for t in targets])
losses = nn.functional.ctc_loss(log_probs, flat, torch.full((4,), steps), lengths, blank=10, reduction='none')
losses.mean().backward()
tensors = {k: v.to(torch.float32) for k, v in state.items()}
padded = torch.full((4, 4), -1.0)
for i, t in enumerate(targets):
    padded[i, :len(t)] = torch.tensor(t, dtype=torch.float32)
tensors.update({'input': x, 'targets': padded, 'scores': scores.detach(), 'losses': losses.detach(),
                'grad.scores': scores.grad * 4})
tensors.update({'grad.' + k: p.grad.clone() for k, p in m.named_parameters()})
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, 'line_cnn.safetensors'),
          metadata={'torch_version': torch.__version__, 'architecture': json.dumps(dict(input=[1, 16, 24], layers=line))})
print('wrote', out)
