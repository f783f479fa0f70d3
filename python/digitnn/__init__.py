"""digitnn: train and run a handwritten-digit CNN on the CPU from numpy.

The engine is digitnn's Rust library (the same as the ``digitnn`` command line); this package is a
thin layer over it::

    import digitnn
    model, history = digitnn.train(preset="fast")          # MNIST, fetched if missing
    digits, probabilities = model.predict(images)          # uint8 (N, 28, 28) or float32 0-1
    digitnn.Model.builtin("numbers").read("number.jpg")["text"]  # a number: a path, PIL image or array
    model.save("digit_model.safetensors")
    model = digitnn.Model.load("digit_model.safetensors")  # or a PyTorch .pt state_dict

Errors raise ``ValueError`` (bad values, corrupt files), ``TypeError`` (wrong types or dtypes)
or ``OSError`` (files that cannot be read or fetched), with the command line's messages.
"""

from ._digitnn import LOW_CONFIDENCE, NOT_DIGIT_THRESHOLD, Model, __version__, train
from . import datasets

__all__ = ["Model", "train", "datasets", "__version__", "NOT_DIGIT_THRESHOLD", "LOW_CONFIDENCE"]
