"""The Python package against the command line and the library's guarantees.

Run with `pytest python/tests` after `pip install ./python`; `.ci/run` does both in a fresh
virtual environment. Needs the `digitnn` binary for the comparisons with the command line:
`$DIGITNN_BIN`, else `target/release/digitnn` or `target/debug/digitnn` of this checkout. Needs no
network, no MNIST and no torch (the torch parity test is skipped, visibly, without it).
"""

import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import digitnn
from digitnn import _digitnn

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
ONE_EPOCH_MODEL = FIXTURES / "mnist_model.safetensors"


def cli():
    """The digitnn binary of this checkout."""
    candidates = [os.environ.get("DIGITNN_BIN")] + [str(ROOT / "target" / p / "digitnn") for p in ("release", "debug")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("no digitnn binary: build it (cargo build --release) or set DIGITNN_BIN")


def write_png(path, pixels):
    """A greyscale PNG of `pixels` (uint8, H x W), written with zlib alone."""
    pixels = np.asarray(pixels, np.uint8)
    height, width = pixels.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def drawn_digit(digit, height=200, width=160, ink=30, paper=235):
    """A digit drawn with a thick pen, dark on light paper, as a photo or scan shows it."""
    y, x = np.mgrid[0:height, 0:width]
    page = np.full((height, width), paper, np.uint8)
    if digit == 1:
        stroke = (np.abs(x - width / 2) < 9) & (y > 20) & (y < height - 20)
    elif digit == 7:
        top = (np.abs(y - 30) < 9) & (x > 25) & (x < width - 25)
        slope = np.abs((x - (width - 30)) + (y - 30) * 0.45) < 10
        stroke = top | (slope & (y > 30) & (y < height - 20))
    else:  # 0: a ring
        r = np.sqrt(((x - width / 2) / 55.0) ** 2 + ((y - height / 2) / 80.0) ** 2)
        stroke = np.abs(r - 1) < 0.14
    page[stroke] = ink
    return page


def synthetic_images(n, seed):
    """MNIST-shaped images and labels: a bright bar whose place depends on the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 4 + 2 * label : 6 + 2 * label, 4:24] = 255
    return images, labels


def write_idx_dataset(directory, train=600, test=200):
    """Four IDX files of synthetic digits (not MNIST: the library uses them as another dataset)."""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", train, 1), ("t10k", test, 2)):
        images, labels = synthetic_images(n, seed)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def test_readme_example_runs(tmp_path, monkeypatch):
    """The README's example, as written, on a small synthetic dataset in place of MNIST."""
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"<!-- python example -->\s*```python\n(.*?)```", readme, re.S)
    assert example, "README.md has no python example block"
    write_idx_dataset(tmp_path / "data")
    monkeypatch.setenv("DIGITNN_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    exec(compile(example.group(1), "README example", "exec"), {})
    assert (tmp_path / "fast.safetensors").exists()


def test_predict_images_matches_the_cli(tmp_path):
    paths = []
    for digit in (0, 1, 7):
        path = tmp_path / f"drawn{digit}.png"
        write_png(path, drawn_digit(digit))
        paths.append(path)
    model = digitnn.Model.load(ONE_EPOCH_MODEL)
    digits, probabilities = model.predict_images(paths)
    out = subprocess.run(
        [cli(), "predict", "--json", "--model", str(ONE_EPOCH_MODEL)] + [str(p) for p in paths],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert list(digits) == [row["digit"] for row in rows] == [0, 1, 7]
    np.testing.assert_allclose(probabilities, [row["probabilities"] for row in rows], rtol=0, atol=1e-6)


def test_predict_array_matches_the_cli_on_raw_pixels(tmp_path):
    images, _ = synthetic_images(4, 5)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"raw{i}.png")
        write_png(paths[-1], image)
    model = digitnn.Model.load(ONE_EPOCH_MODEL)
    digits, probabilities = model.predict(images)
    out = subprocess.run(
        [cli(), "predict", "--raw", "--json", "--model", str(ONE_EPOCH_MODEL)] + [str(p) for p in paths],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert list(digits) == [-1 if row["digit"] is None else row["digit"] for row in rows]
    np.testing.assert_allclose(probabilities, [row["probabilities"] for row in rows], rtol=0, atol=1e-6)


def test_every_input_form_gives_the_same_predictions():
    model = digitnn.Model.load(ONE_EPOCH_MODEL)
    images, _ = synthetic_images(5, 6)
    digits, probabilities = model.predict(images)
    assert digits.dtype == np.int64 and digits.shape == (5,)
    assert probabilities.dtype == np.float32 and probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    as_float = images.astype(np.float32) / 255
    # Fortran order and strided views are copied in the images' order, not read in memory order.
    wide = np.zeros((5, 28, 56), np.float32)
    wide[:, :, ::2] = as_float
    forms = (as_float, images[:, None], as_float[:, None], np.asfortranarray(as_float), np.asfortranarray(images))
    for x in forms + (wide[:, :, ::2], as_float[::-1][::-1]):
        d, p = model.predict(x)
        assert (d == digits).all()
        np.testing.assert_allclose(p, probabilities, atol=1e-6)
    d, p = model.predict(images[2])
    assert d.shape == (1,) and d[0] == digits[2]
    assert model.predict(images[:0])[1].shape == (0, 10)


def test_state_dict_round_trips(tmp_path):
    model = digitnn.Model.builtin()
    images, _ = synthetic_images(8, 7)
    logits = model.logits(images)
    state = model.state_dict()
    assert state["model.0.weight"].shape == (48, 1, 3, 3) and state["model.0.weight"].dtype == np.float32
    counters = [name for name in state if name.endswith("num_batches_tracked")]
    assert counters and all(state[name].dtype == np.int64 for name in counters)
    again = digitnn.Model.from_state_dict("reader", state)
    np.testing.assert_array_equal(again.logits(images), logits)
    for name in ("copy.safetensors", "copy.pt"):
        model.save(tmp_path / name)
        np.testing.assert_array_equal(digitnn.Model.load(tmp_path / name).logits(images), logits)
    seed = digitnn.Model.load(ONE_EPOCH_MODEL)
    from_arch_list = digitnn.Model.from_state_dict(json.loads(seed.architecture), seed.state_dict())
    np.testing.assert_array_equal(from_arch_list.logits(images), seed.logits(images))


def hash_sign(side=200):
    """A "#" drawn dark on light paper: not a digit."""
    page = np.full((side, side), 235, np.uint8)
    for at in (side * 7 // 20, side * 13 // 20):
        page[side // 10 : side * 9 // 10, at - 7 : at + 7] = 25
        page[at - 7 : at + 7, side // 10 : side * 9 // 10] = 25
    return page


def test_not_a_digit(tmp_path):
    """The built-in model refuses a "#" (-1, probabilities kept), reads a drawn 7, answers a digit
    for everything with refuse=False; its eleventh output survives state_dict and .pt."""
    write_png(tmp_path / "hash.png", hash_sign())
    write_png(tmp_path / "seven.png", drawn_digit(7))
    paths = [tmp_path / "hash.png", tmp_path / "seven.png"]
    model = digitnn.Model.builtin()
    digits, probabilities = model.predict_images(paths)
    assert list(digits) == [-1, 7]
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    forced, _ = model.predict_images(paths, refuse=False)
    assert forced[0] == probabilities[0].argmax() and forced[1] == 7
    out = subprocess.run(
        [cli(), "predict", "--json"] + [str(p) for p in paths], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["digit"] for row in rows] == [None, 7] and [row["is_digit"] for row in rows] == [False, True]
    assert rows[0]["guess"] == forced[0]

    images, _ = synthetic_images(4, 3)
    assert model.logits(images).shape == (4, 11)
    scores = model.not_digit(images)
    assert scores.shape == (4,) and scores.dtype == np.float32
    refused = model.predict(images)[0] == -1
    assert (refused == (scores > digitnn.NOT_DIGIT_THRESHOLD)).all()
    state = model.state_dict()
    last = max((k for k in state if k.endswith(".weight")), key=lambda k: int(k.split(".")[1]))
    assert state[last].shape == (11, 192 * 9)
    model.save(tmp_path / "reader.pt")
    np.testing.assert_array_equal(digitnn.Model.load(tmp_path / "reader.pt").logits(images), model.logits(images))
    # A 10-output model says "not a digit" only where no digit gets half the probability.
    old = digitnn.Model.load(ONE_EPOCH_MODEL)
    digits, probabilities = old.predict(images)
    assert ((digits == -1) == (probabilities.max(axis=1) < digitnn.LOW_CONFIDENCE)).all()


def test_bad_arrays_raise_clear_errors():
    model = digitnn.Model.load(ONE_EPOCH_MODEL)
    cases = [
        (np.zeros((2, 28, 28), np.float64), TypeError, "uint8 (0-255) or float32 (0-1), not float64"),
        ([[0] * 28] * 28, TypeError, "must be a numpy array"),
        (np.zeros((2, 27, 28), np.uint8), ValueError, "shaped (28, 28), (N, 28, 28) or (N, 1, 28, 28)"),
        (np.zeros((2, 3, 28, 28), np.uint8), ValueError, "(N, 1, 28, 28)"),
        (np.full((1, 28, 28), 1.5, np.float32), ValueError, "values in [0, 1]"),
        (np.full((1, 28, 28), np.nan, np.float32), ValueError, "values in [0, 1]"),
    ]
    for x, kind, message in cases:
        with pytest.raises(kind) as raised:
            model.predict(x)
        assert message in str(raised.value)
    images, labels = synthetic_images(3, 8)
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        model.evaluate(images, labels[:2])
    with pytest.raises(ValueError, match="label 10; digits are labelled 0 to 9"):
        model.evaluate(images, np.array([1, 2, 10]))
    with pytest.raises(TypeError, match="integers"):
        model.evaluate(images, np.array([1.0, 2.0, 3.0]))


def test_mnist_is_downloaded_with_urllib(tmp_path):
    # The package leaves out the library's HTTP client: MNIST's mirrors are read with urllib,
    # here from a server on loopback; a missing file is an OSError naming the status.
    import functools
    import http.server

    (tmp_path / "file.gz").write_bytes(b"gzip bytes")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        assert bytes(_digitnn._download(base + "file.gz", 10.0)) == b"gzip bytes"
        with pytest.raises(OSError, match="404"):
            _digitnn._download(base + "missing.gz", 10.0)
    finally:
        server.shutdown()


def test_bad_settings_are_named_as_keywords():
    # The library names a setting in its own words; Python names the keyword argument.
    with pytest.raises(ValueError, match=r"batch_size=0: must be between 1 and"):
        digitnn.train(small_data(), epochs=1, batch_size=0)
    with pytest.raises(ValueError, match=r"lr=-1: must be more than 0"):
        digitnn.train(small_data(), epochs=1, lr=-1.0)
    with pytest.raises(ValueError, match=r"threads=0: must be at least 1"):
        digitnn.train(small_data(), epochs=1, threads=0)


def test_bad_files_and_state_dicts_raise(tmp_path):
    with pytest.raises(OSError, match="No such file"):
        digitnn.Model.load(tmp_path / "missing.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(ONE_EPOCH_MODEL.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.safetensors"):
        digitnn.Model.load(truncated)
    with pytest.raises(ValueError, match="choose the format by extension"):
        digitnn.Model.load(ONE_EPOCH_MODEL).save(tmp_path / "model.bin")
    state = digitnn.Model.load(ONE_EPOCH_MODEL).state_dict()
    with pytest.raises(ValueError, match="has 7 tensors; this architecture has 8"):
        digitnn.Model.from_state_dict("seed", {k: v for k, v in state.items() if k != "model.7.bias"})
    with pytest.raises(ValueError, match="model.7.weight has shape"):
        digitnn.Model.from_state_dict("seed", {**state, "model.7.weight": np.zeros((10, 5), np.float32)})
    with pytest.raises(ValueError, match="non-finite"):
        digitnn.Model.from_state_dict("seed", {**state, "model.7.bias": np.full(10, np.inf, np.float32)})
    with pytest.raises(ValueError, match="unknown architecture"):
        digitnn.Model.from_state_dict("resnet", state)
    with pytest.raises(ValueError, match="unknown precision"):
        digitnn.Model.builtin(precision="fp8")


def test_engine_choices_and_the_bf16_note():
    model = digitnn.Model.builtin(isa="portable", conv="direct")
    assert model.engine == "portable kernels, direct convolutions, fp32" and model.bf16_layers == []
    # The bf16 kernels need the avx512 ones: on others (or a CPU without AVX512-BF16) bf16 runs
    # fp32 and says so.
    with pytest.warns(RuntimeWarning, match="bf16 runs in fp32 here"):
        digitnn.Model.builtin(isa="portable", precision="bf16")


def small_data(n=400, seed=9):
    x_train, y_train = synthetic_images(n, seed)
    x_test, y_test = synthetic_images(100, seed + 1)
    return x_train, y_train, x_test, y_test


def test_training_reports_every_epoch_and_learns():
    seen = []
    model, history = digitnn.train(small_data(), preset="fast", epochs=2, on_epoch=seen.append)
    assert seen == history and [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) == {"epoch", "train_loss", "last_batch_loss", "test_accuracy", "seconds", "images_per_sec"}
    assert model.test_accuracy == history[-1]["test_accuracy"] > 0.5
    _, _, x_test, y_test = small_data()
    assert model.evaluate(x_test, y_test)["accuracy"] == history[-1]["test_accuracy"]


def test_same_seed_same_weights_on_any_thread_count():
    one, _ = digitnn.train(small_data(), epochs=1, threads=1, seed=3, batch_size=64)
    two, _ = digitnn.train(small_data(), epochs=1, threads=2, seed=3, batch_size=64)
    for name, values in one.state_dict().items():
        np.testing.assert_array_equal(values, two.state_dict()[name], err_msg=name)


def test_keyboard_interrupt_from_a_callback_stops_training():
    epochs = []

    def stop(stats):
        epochs.append(stats["epoch"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        digitnn.train(small_data(), preset="fast", epochs=5, on_epoch=stop)
    assert epochs == [1]


def test_ctrl_c_stops_training_between_steps():
    x_train, y_train = synthetic_images(20000, 11)
    data = (x_train, y_train) + small_data()[2:]
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        digitnn.train(data, epochs=50)
    # Fifty epochs of 20,000 images would take minutes; the interrupt lands within a step.
    assert time.monotonic() - started < 30


def test_the_gil_is_released_while_the_engine_runs():
    model = digitnn.Model.builtin()
    images, _ = synthetic_images(3000, 12)
    counted = [0]
    done = threading.Event()

    def count():
        while not done.is_set():
            counted[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    before = counted[0]
    model.predict(images)
    during = counted[0] - before
    done.set()
    counter.join()
    # With the GIL held for the whole call the counting thread could not run at all.
    assert during > 1000, during


def test_parity_with_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed: logits parity with PyTorch not checked")
    nn = torch.nn
    seed = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 22 * 22, 10),
    )
    model = digitnn.Model.load(ONE_EPOCH_MODEL)
    # Sequential names its layers 0, 1, ...; the original model's are model.0, model.1, ...
    seed.load_state_dict({k.removeprefix("model."): torch.from_numpy(v) for k, v in model.state_dict().items()})
    images = synthetic_images(16, 13)[0].astype(np.float32) / 255
    with torch.no_grad():
        want = seed(torch.from_numpy(images[:, None])).numpy()
    # Both fp32, summed in different orders: measured 6e-6 on logits up to 18.
    np.testing.assert_allclose(model.logits(images), want, rtol=0, atol=2e-5)
    # And back: torch's tensors build the same model.
    again = digitnn.Model.from_state_dict("seed", {"model." + k: v for k, v in seed.state_dict().items()})
    np.testing.assert_array_equal(again.logits(images), model.logits(images))


def test_the_builtin_models_pt_file_loads_into_torch_strictly(tmp_path):
    """The built-in model saved as .pt loads into a torch Sequential of the reader network (11
    outputs, "not a digit" last) with torch.load(weights_only=True) and strict=True, and gives
    its logits."""
    torch = pytest.importorskip("torch", reason="torch is not installed: the .pt file's load into PyTorch not checked")
    nn = torch.nn

    def stage(pairs):
        layers = []
        for i, o in pairs:
            layers += [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
        return layers + [nn.MaxPool2d(2, 2)]

    reader = nn.Sequential(
        *stage([(1, 48), (48, 48)]), *stage([(48, 96), (96, 96)]), *stage([(96, 192)]),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(192 * 9, 11),
    )
    model = digitnn.Model.builtin()
    model.save(tmp_path / "reader.pt")
    state = torch.load(tmp_path / "reader.pt", weights_only=True)
    reader.load_state_dict({k.removeprefix("model."): v for k, v in state.items()}, strict=True)
    reader.eval()
    images = synthetic_images(8, 21)[0].astype(np.float32) / 255
    with torch.no_grad():
        want = reader(torch.from_numpy(images[:, None])).numpy()
    assert want.shape == (8, 11)
    np.testing.assert_allclose(model.logits(images), want, rtol=0, atol=1e-4)


def drawn_number(digits="170", gap=40):
    """Digits drawn side by side with gaps, dark on light paper, one picture."""
    pieces = [drawn_digit(int(d)) for d in digits]
    spacer = np.full((pieces[0].shape[0], gap), 235, np.uint8)
    row = [spacer]
    for piece in pieces:
        row += [piece, spacer]
    return np.hstack(row)


def test_read_matches_the_cli_for_every_input_form(tmp_path):
    """`read` takes a path, a grey or colour array (uint8 or float) and a PIL image, and answers
    as one line of `digitnn read --json`."""
    page = drawn_number("170")
    path = tmp_path / "number.png"
    write_png(path, page)
    out = subprocess.run([cli(), "read", "--json", str(path)], capture_output=True, text=True, check=True)
    expected = json.loads(out.stdout)
    model = digitnn.Model.builtin("numbers")
    reading = model.read(path)
    assert reading["text"] == expected["text"] == "170"
    assert reading["digits"] == expected["digits"]
    assert [d["box"][0] for d in reading["digits"]] == sorted(d["box"][0] for d in reading["digits"])
    colour = np.repeat(page[:, :, None], 3, axis=2)
    for form in (str(path), page, colour, page.astype(np.float32) / 255.0, np.dstack([colour, np.full(page.shape, 255, np.uint8)])):
        assert model.read(form)["text"] == "170"
    blank = model.read(np.full((50, 80), 255, np.uint8))
    assert blank["text"] == "" and "blank" in blank["message"]
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        model.read(np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.read(np.full((40, 40), 2.0))
    with pytest.raises(ValueError, match="megapixels"):
        model.read(np.zeros((8000, 6001), np.uint8))
    with pytest.raises(ValueError, match="no built-in model"):
        digitnn.Model.builtin("best")


def test_read_takes_a_pil_image(tmp_path):
    image = pytest.importorskip("PIL.Image", reason="Pillow is not installed: the PIL input is untested here")
    page = drawn_number("07")
    assert digitnn.Model.builtin("numbers").read(image.fromarray(page).convert("RGB"))["text"] == "07"


def test_predict_prepares_a_picture_held_in_memory(tmp_path):
    """A photo-like array of any size is prepared as `digitnn predict` prepares the file."""
    page = drawn_digit(7)
    path = tmp_path / "seven.png"
    write_png(path, page)
    model = digitnn.Model.builtin()
    from_file = model.predict_images([path])
    for form in (page, np.repeat(page[:, :, None], 3, axis=2), path):
        digits, probabilities = model.predict(form)
        assert digits.tolist() == from_file[0].tolist() == [7]
        np.testing.assert_allclose(probabilities, from_file[1], atol=1e-6)
