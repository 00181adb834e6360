"""An exported MNIST model answers both signatures, under both loaders, as it did in training."""

import os
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from tensorflow_serving.example import (
    atomic_export,
    mnist_input_data,
    mnist_signatures,
    mnist_softmax,
)
from tensorflow_serving.test_util import testing


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=300, num_test=50)
    return mnist_input_data.read_data_sets(path, one_hot=True, source_url=None)


@pytest.fixture(scope="module")
def export(data, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("export"))

    def build(x):
        return mnist_softmax.build_softmax(x, with_bias=True)

    result = mnist_signatures.train_and_export_graph(build, base, 3, 20, data, 50)
    return base, result


def test_export_lands_in_the_version_directory(export):
    base, result = export
    assert result.export_path == os.path.join(base, "3")
    assert os.listdir(base) == ["3"]
    assert sorted(os.listdir(result.export_path)) == ["saved_model.pb", "variables"]
    assert 0.5 < result.test_accuracy <= 1.0
    assert result.test_scores.shape == (50, 10)


def _signature_layout(export_path):
    with tf.Graph().as_default(), tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], export_path)
    layout = {}
    for key, sig in meta.signature_def.items():

        def describe(infos):
            return {
                k: (tf.as_dtype(v.dtype).name, [d.size for d in v.tensor_shape.dim])
                for k, v in infos.items()
            }

        layout[key] = (sig.method_name, describe(sig.inputs), describe(sig.outputs))
    return layout


def test_signatures_have_the_chapters_names_dtypes_and_shapes(export):
    _, result = export
    assert _signature_layout(result.export_path) == {
        "predict_images": (
            "tensorflow/serving/predict",
            {"images": ("float32", [-1, 784])},
            {"scores": ("float32", [-1, 10])},
        ),
        "serving_default": (
            "tensorflow/serving/classify",
            {"inputs": ("string", [-1])},
            {"classes": ("string", [-1, 10]), "scores": ("float32", [-1, 10])},
        ),
    }


@pytest.mark.parametrize("runner", ["v1", "tf2"])
def test_loaded_export_predicts_what_the_trained_graph_did(data, export, runner):
    _, result = export
    run = mnist_signatures.run_export_v1 if runner == "v1" else mnist_signatures.run_export_tf2
    out = run(result.export_path, data.test.images)
    np.testing.assert_allclose(out.predict_scores, result.test_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out.predict_scores.argmax(1), result.test_scores.argmax(1))
    # Classify: the classes are the class ids sorted by score, with those scores.
    order = np.argsort(-result.test_scores, axis=1, kind="stable")
    np.testing.assert_array_equal(out.classify_classes[:, 0].astype(int), order[:, 0])
    np.testing.assert_allclose(
        out.classify_scores, np.take_along_axis(result.test_scores, order, 1), rtol=1e-5, atol=1e-6
    )
    assert out.classify_classes.dtype == object
    assert sorted(out.classify_classes[0]) == [str(i).encode() for i in range(10)]


def test_existing_version_is_refused_before_training(data, export):
    base, _ = export
    calls = []

    def build(x):
        calls.append(x)
        return mnist_softmax.build_softmax(x)

    with pytest.raises(atomic_export.VersionExistsError):
        mnist_signatures.train_and_export_graph(build, base, 3, 5, data, 50)
    assert calls == []


def test_serialize_examples_carries_feature_x():
    images = np.linspace(0, 1, 2 * 784, dtype=np.float32).reshape(2, 784)
    (first, _) = mnist_signatures.serialize_examples(images)
    example = tf.train.Example.FromString(first)
    np.testing.assert_array_equal(example.features.feature["x"].float_list.value, images[0])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
