"""Datasets as numpy arrays."""

from ._digitnn import mnist_arrays as _mnist_arrays


def mnist(data_dir=None):
    """MNIST as ``(x_train, y_train, x_test, y_test)``: images uint8 ``(N, 28, 28)`` (0-255,
    light digits on black), labels uint8 ``(N,)``.

    Read from ``data_dir`` (default: ``$DIGITNN_DATA``, else ``data/mnist``); when the files are
    missing they are fetched there first and verified against MNIST's SHA-256 checksums, as
    ``digitnn train`` does (set ``DIGITNN_NO_FETCH=1`` to forbid fetching). Offline, a missing
    dataset raises ``OSError`` saying so.
    """
    return _mnist_arrays(data_dir)


__all__ = ["mnist"]
