"""The half_plus_two exporters write models plain TensorFlow loads and answers y = a*x + b with."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp2
from tensorflow_serving.test_util import testing

UPSTREAM = "/work/shared/testdata/tf_serving"


def _examples(xs, x2s=None):
    out = []
    for i, x in enumerate(xs):
        feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}
        if x2s is not None:
            feature["x2"] = tf.train.Feature(float_list=tf.train.FloatList(value=[x2s[i]]))
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        out.append(example.SerializeToString())
    return out


def _layout(export_path):
    """{signature: (method, {input: (dtype, shape)}, {output: (dtype, shape)})}, via the v1 loader."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_path)

    def describe(infos):
        return {
            k: (
                tf.as_dtype(v.dtype).name,
                None if v.tensor_shape.unknown_rank else [d.size for d in v.tensor_shape.dim],
            )
            for k, v in infos.items()
        }

    return {
        key: (sig.method_name, describe(sig.inputs), describe(sig.outputs))
        for key, sig in meta.signature_def.items()
        if not key.startswith("__")
    }


def test_tf1_export_answers_every_signature_with_the_v1_loader(tmp_path):
    path = hp2.export_half_plus_two_tf1(str(tmp_path), 123, zero_pad=True)
    assert path == os.path.join(str(tmp_path), "00000123")
    assert sorted(os.listdir(path)) == ["assets", "saved_model.pb", "variables"]
    assert open(os.path.join(path, "assets", "foo.txt")).read() == "asset-file-contents"
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sigs = meta.signature_def

        def run(key, output, feed_key, value):
            sig = sigs[key]
            return sess.run(sig.outputs[output].name, {sig.inputs[feed_key].name: value})

        x = np.array([[1.0], [2.0], [5.0]], np.float32)
        np.testing.assert_allclose(run("serving_default", "y", "x", x), [[2.5], [3.0], [4.5]])
        examples = _examples([1.0, 2.0], x2s=[10.0, 20.0])
        np.testing.assert_allclose(
            run("classify_x_to_y", "scores", "inputs", examples), [[2.5], [3.0]]
        )
        np.testing.assert_allclose(
            run("regress_x_to_y", "outputs", "inputs", examples), [[2.5], [3.0]]
        )
        np.testing.assert_allclose(
            run("regress_x_to_y2", "outputs", "inputs", examples), [[3.5], [4.0]]
        )
        x2 = np.array([[10.0]], np.float32)
        np.testing.assert_allclose(run("regress_x2_to_y3", "outputs", "inputs", x2), [[8.0]])


def test_tf1_export_loads_with_tf_saved_model_load(tmp_path):
    path = hp2.export_half_plus_two_tf1(str(tmp_path), 1)
    loaded = tf.saved_model.load(path)
    y = loaded.signatures["serving_default"](x=tf.constant([[4.0]]))["y"]
    np.testing.assert_allclose(y.numpy(), [[4.0]])
    scores = loaded.signatures["classify_x_to_y"](inputs=tf.constant(_examples([6.0])))["scores"]
    np.testing.assert_allclose(scores.numpy(), [[5.0]])


def test_a_and_b_tell_versions_apart(tmp_path):
    base = str(tmp_path)
    hp2.export_half_plus_two_tf1(base, 1)
    hp2.export_half_plus_two_tf1(base, 2, a=1.0, b=10.0)
    assert sorted(os.listdir(base)) == ["1", "2"]
    answers = [
        tf.saved_model.load(os.path.join(base, v))
        .signatures["serving_default"](x=tf.constant([[2.0]]))["y"]
        .numpy()[0, 0]
        for v in ("1", "2")
    ]
    assert answers == [3.0, 12.0]


def test_tf2_export_answers_every_signature(tmp_path):
    path = hp2.export_half_plus_two_tf2(str(tmp_path), 7, b=3.0)
    assert "fingerprint.pb" in os.listdir(path)
    sigs = tf.saved_model.load(path).signatures
    assert set(sigs) == {
        "serving_default",
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x_to_y2",
        "regress_x2_to_y3",
        "classify_x2_to_y3",
    }
    np.testing.assert_allclose(
        sigs["serving_default"](x=tf.constant([1.0, 2.0, 5.0]))["y"], [3.5, 4.0, 5.5]
    )
    examples = tf.constant(_examples([1.0, 4.0]))
    np.testing.assert_allclose(sigs["classify_x_to_y"](inputs=examples)["scores"], [[3.5], [5.0]])
    np.testing.assert_allclose(sigs["regress_x_to_y"](inputs=examples)["outputs"], [[3.5], [5.0]])
    np.testing.assert_allclose(sigs["regress_x_to_y2"](inputs=examples)["outputs"], [[3.5], [5.0]])
    np.testing.assert_allclose(
        sigs["regress_x2_to_y3"](inputs=tf.constant([2.0]))["outputs"], [4.0]
    )
    np.testing.assert_allclose(
        sigs["classify_x2_to_y3"](inputs=tf.constant([2.0]))["scores"], [4.0]
    )


def test_tf2_export_runs_under_the_v1_loader(tmp_path):
    path = hp2.export_half_plus_two_tf2(str(tmp_path), 1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def["serving_default"]
        y = sess.run(sig.outputs["y"].name, {sig.inputs["x"].name: [2.0, 4.0]})
    np.testing.assert_allclose(y, [3.0, 4.0])


@pytest.mark.skipif(not os.path.isdir(UPSTREAM), reason="upstream test data not on this machine")
@pytest.mark.parametrize(
    "upstream, export",
    [
        ("saved_model_half_plus_two_cpu", lambda d: hp2.export_half_plus_two_tf1(d, 123)),
        (
            "saved_model_half_plus_two_tf2_cpu",
            lambda d: hp2.export_half_plus_two_tf2(d, 123, x_shape=(1,)),
        ),
    ],
)
def test_signature_layout_matches_upstreams_files(tmp_path, upstream, export):
    ours = _layout(export(str(tmp_path)))
    theirs = _layout(os.path.join(UPSTREAM, upstream, "00000123"))
    assert ours == theirs


LOAD_ERRORS = (OSError, ValueError, tf.errors.OpError)


@pytest.mark.parametrize("kind", hp2.CORRUPT_KINDS)
def test_corrupt_versions_fail_to_load(tmp_path, kind):
    path = hp2.export_corrupt_version(str(tmp_path), 3, kind)
    assert os.listdir(str(tmp_path)) == ["3"]
    with pytest.raises(LOAD_ERRORS):
        tf.saved_model.load(path)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        with pytest.raises(LOAD_ERRORS):
            tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)


def test_unknown_corrupt_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        hp2.export_corrupt_version(str(tmp_path), 1, "bitrot")


def test_existing_version_needs_overwrite(tmp_path):
    hp2.export_half_plus_two_tf1(str(tmp_path), 1)
    with pytest.raises(FileExistsError):
        hp2.export_half_plus_two_tf2(str(tmp_path), 1)
    hp2.export_half_plus_two_tf2(str(tmp_path), 1, overwrite=True)
    assert "fingerprint.pb" in os.listdir(os.path.join(str(tmp_path), "1"))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
