"""The original project's model, named as its state_dict is (model.0.weight, ...)."""
import torch.nn as nn


class DigitClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                   nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 22 * 22, 10))

    def forward(self, x):
        return self.model(x)


class Sequential(nn.Module):
    """Any digitnn architecture (its JSON list of layers, as `digitnn train --arch FILE.json`
    reads it), with the state_dict names digitnn uses (model.{index}.{name})."""

    def __init__(self, layers):
        super().__init__()
        self.model = nn.Sequential(*[_layer(spec) for spec in layers])

    def forward(self, x):
        return self.model(x)


class Columns(nn.Module):
    """digitnn's `columns` layer: each column of the image as one position of a sequence, its rows
    stacked into the channels ([n, c, h, w] -> [n, c * h, 1, w])."""

    def forward(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, c * h, 1, w)


def _layer(spec):
    kind = spec['type']
    if kind == 'conv2d':
        return nn.Conv2d(spec['in_channels'], spec['out_channels'], spec['kernel_size'], spec['stride'],
                         spec['padding'])
    if kind == 'batch_norm2d':
        return nn.BatchNorm2d(spec['num_features'], spec.get('eps', 1e-5), spec.get('momentum', 0.1))
    if kind == 'relu':
        return nn.ReLU()
    if kind == 'max_pool2d':
        return nn.MaxPool2d(spec['kernel_size'], spec['stride'])
    if kind == 'columns':
        return Columns()
    if kind == 'flatten':
        return nn.Flatten()
    if kind == 'linear':
        return nn.Linear(spec['in_features'], spec['out_features'])
    if kind == 'dropout':
        return nn.Dropout(spec['p'])
    raise ValueError(f'unknown layer type {kind}')
