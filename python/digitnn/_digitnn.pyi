"""Type stubs of the native module (written by hand; `python/src/lib.rs` is the source)."""

from os import PathLike
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
# An 11-output model's `predict` refuses an image whose `not_digit` passes NOT_DIGIT_THRESHOLD; a
# 10-output model one whose most likely digit gets less than LOW_CONFIDENCE.
NOT_DIGIT_THRESHOLD: float
LOW_CONFIDENCE: float

_Path = Union[str, "PathLike[str]"]
_Images = Union[npt.NDArray[np.uint8], npt.NDArray[np.float32]]
_Arch = Union[str, Sequence[Mapping[str, Any]], Mapping[str, Any]]
_Predictions = Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
# A picture as `read` takes it: a path, a PIL image, or an array (H, W) or (H, W, 3 or 4).
_Picture = Union[_Path, npt.NDArray[Any], Any]

class Model:
    """A trained or loaded network. Methods release the GIL while the engine runs."""

    @staticmethod
    def load(
        path: _Path, *, isa: Optional[str] = None, conv: Optional[str] = None, precision: Optional[str] = None
    ) -> "Model":
        """Loads a safetensors file or a PyTorch .pt state_dict (recognised by content)."""
    @staticmethod
    def builtin(
        name: str = "reader", *, isa: Optional[str] = None, conv: Optional[str] = None, precision: Optional[str] = None
    ) -> "Model":
        """A model built into digitnn: "reader" (what `digitnn predict` uses, with a "not a digit"
        output) or "numbers" (the number reader `digitnn read` uses)."""
    @staticmethod
    def from_state_dict(
        arch: _Arch,
        state_dict: Mapping[str, Any],
        *,
        isa: Optional[str] = None,
        conv: Optional[str] = None,
        precision: Optional[str] = None,
    ) -> "Model":
        """A model of architecture `arch` ("seed", "fast", "best" or a list of layers) holding the
        tensors of `state_dict` (PyTorch's names and shapes; numpy arrays or torch tensors)."""
    def save(self, path: _Path) -> None:
        """Saves as .safetensors, or .pt / .pth for torch.load; atomically."""
    def predict(self, x: Union[_Images, _Picture], *, refuse: bool = True) -> _Predictions:
        """Digits (int64, (N,); -1 where the image is not a digit) and probabilities (float32,
        (N, 10), each digit's if it is one) for images shaped (28, 28), (N, 28, 28) or
        (N, 1, 28, 28): uint8 0-255 or float32 0-1, light digits on dark. Or one picture as
        `read` takes it, prepared as `digitnn predict` prepares a file (N = 1). refuse=False
        answers a digit for every image."""
    def read(self, picture: _Picture) -> dict[str, Any]:
        """The number in a picture (a path, a PIL image, or an array of any size, grey or colour,
        uint8 or float 0-1): a dict as one line of `digitnn read --json`, with text, confidence,
        digits (digit, confidence, box [x, y, w, h], line), skipped and, when nothing was read,
        message."""
    def not_digit(self, x: _Images) -> npt.NDArray[np.float32]:
        """How likely each image is not a digit, float32 (N,); predict refuses above 0.1 (0.5 for a 10-output model)."""
    def logits(self, x: _Images) -> npt.NDArray[np.float32]:
        """The scores before the softmax, float32 (N, 10), or (N, 11) with "not a digit" last."""
    def predict_images(self, paths: Sequence[_Path], *, refuse: bool = True) -> _Predictions:
        """Reads and prepares image files as `digitnn predict` does, then predicts."""
    def evaluate(self, images: _Images, labels: npt.ArrayLike) -> dict[str, Any]:
        """accuracy, correct, total, refused, read_right, confusion (int64 10x10,
        [true][predicted]), precision, recall."""
    def state_dict(self) -> dict[str, npt.NDArray[Any]]:
        """Every tensor under PyTorch's names, as new numpy arrays."""
    def set_engine(
        self, *, isa: Optional[str] = None, conv: Optional[str] = None, precision: Optional[str] = None
    ) -> None:
        """Runs on other kernels: isa auto|avx512|avx2|portable, conv auto|direct|winograd2|winograd4,
        precision fp32|bf16."""
    @property
    def architecture(self) -> str:
        """The layers as JSON (what `digitnn train --arch FILE.json` reads)."""
    @property
    def engine(self) -> str: ...
    @property
    def bf16_layers(self) -> list[str]: ...
    @property
    def parameter_count(self) -> int: ...
    @property
    def test_accuracy(self) -> Optional[float]: ...

def train(
    data: Union[None, _Path, Tuple[_Images, npt.ArrayLike, _Images, npt.ArrayLike]] = None,
    *,
    preset: str = "seed",
    arch: Optional[_Arch] = None,
    epochs: Optional[int] = None,
    batch_size: Optional[int] = None,
    optimizer: Optional[str] = None,
    lr: Optional[float] = None,
    momentum: Optional[float] = None,
    weight_decay: Optional[float] = None,
    schedule: Optional[str] = None,
    warmup: Optional[float] = None,
    augment: Optional[bool] = None,
    elastic: bool = False,
    label_smoothing: Optional[float] = None,
    ema: Optional[float] = None,
    seed: int = 0,
    shuffle: bool = True,
    limit: Optional[int] = None,
    threads: Optional[int] = None,
    isa: Optional[str] = None,
    conv: Optional[str] = None,
    precision: Optional[str] = None,
    on_epoch: Optional[Callable[[dict[str, Any]], object]] = None,
) -> Tuple[Model, list[dict[str, Any]]]:
    """Trains as `digitnn train` does; returns (model, one dict per epoch)."""

def mnist_arrays(
    data_dir: Optional[_Path] = None,
) -> Tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]: ...
