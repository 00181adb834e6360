"""The serving interface both TF1 MNIST exporters give their SavedModel.

A served MNIST model answers two ways, as upstream's mnist_saved_model does:

- `predict_images` (Predict API): input `images` float [-1, 784], output
  `scores` float [-1, 10], the class probabilities.
- `serving_default` (Classify API): input `inputs`, a string vector of
  serialized tf.Example protos, each with a float feature `x` of 784 values;
  outputs `classes` (string labels "0".."9", best first) and `scores` (their
  probabilities), both [-1, 10].

Both read the same `x` tensor: it is parsed from the tf.Example placeholder,
and the Predict signature feeds it directly, which cuts the parse out of the
graph it runs. The exporters train their model on this `x`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable

import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import meta_graph_pb2

from tensorflow_serving.example import atomic_export, classifier_graph, mnist_input_data
from tensorflow_serving.example.classifier_graph import ClassifierGraph
from tensorflow_serving.example.training_progress import StepReport

logger = logging.getLogger(__name__)

PREDICT_SIGNATURE = "predict_images"
CLASSIFY_SIGNATURE = tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
FEATURE = "x"
NUM_CLASSES = 10


@dataclasses.dataclass
class ExportResult:
    """Where an exporter wrote, and what the model measured before export."""

    export_path: str
    test_accuracy: float
    train_seconds: float
    # The trained model's class probabilities for data.test.images, computed
    # before export: what the exported model must reproduce.
    test_scores: np.ndarray


def serving_input() -> tuple[tf.Tensor, tf.Tensor]:
    """(serialized tf.Example placeholder [None], parsed images x [None, 784] named 'x')."""
    serialized_tf_example = tf.placeholder(tf.string, shape=[None], name="tf_example")
    feature_configs = {FEATURE: tf.FixedLenFeature(shape=[784], dtype=tf.float32)}
    tf_example = tf.parse_example(serialized_tf_example, feature_configs)
    x = tf.identity(tf_example[FEATURE], name="x")  # tf.identity() names it
    return serialized_tf_example, x


def build_signatures(
    serialized_tf_example: tf.Tensor, x: tf.Tensor, scores: tf.Tensor
) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The predict_images and serving_default (classify) SignatureDefs over one model."""
    values, indices = tf.nn.top_k(scores, NUM_CLASSES)
    class_names = tf.constant([str(i) for i in range(NUM_CLASSES)])
    prediction_classes = tf.gather(class_names, indices, name="classes")
    info = tf.saved_model.utils.build_tensor_info
    constants = tf.saved_model.signature_constants
    classification_signature = tf.saved_model.signature_def_utils.build_signature_def(
        inputs={constants.CLASSIFY_INPUTS: info(serialized_tf_example)},
        outputs={
            constants.CLASSIFY_OUTPUT_CLASSES: info(prediction_classes),
            constants.CLASSIFY_OUTPUT_SCORES: info(values),
        },
        method_name=constants.CLASSIFY_METHOD_NAME,
    )
    prediction_signature = tf.saved_model.signature_def_utils.build_signature_def(
        inputs={"images": info(x)},
        outputs={"scores": info(scores)},
        method_name=constants.PREDICT_METHOD_NAME,
    )
    return {PREDICT_SIGNATURE: prediction_signature, CLASSIFY_SIGNATURE: classification_signature}


def export_session(
    sess: tf.Session,
    export_base: str,
    model_version: int,
    signature_def_map: dict[str, meta_graph_pb2.SignatureDef],
    overwrite: bool = False,
) -> str:
    """Writes sess's graph and variables as SavedModel `<export_base>/<version>`, atomically."""
    target = atomic_export.version_path(export_base, model_version)
    with atomic_export.atomic_export(export_base, model_version, overwrite) as export_dir:
        builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
        builder.add_meta_graph_and_variables(
            sess,
            [tf.saved_model.tag_constants.SERVING],
            signature_def_map=signature_def_map,
            strip_default_attrs=True,
        )
        builder.save()
    logger.info("exported SavedModel to %s", target)
    return os.fspath(target)


def train_and_export_graph(
    build_model: Callable[[tf.Tensor], ClassifierGraph],
    export_base: str,
    model_version: int,
    training_iteration: int,
    data: mnist_input_data.DataSets,
    batch_size: int,
    overwrite: bool = False,
    seed: int | None = None,
    progress: StepReport | None = None,
) -> ExportResult:
    """Builds a model on the serving input, trains it, measures it, exports it.

    `build_model(x)` builds the classifier on the parsed images `x` in the
    current graph. The target version is checked before training, so a
    refused export costs no training time. `progress(step, loss)` follows
    the training.
    """
    if training_iteration <= 0:
        raise ValueError(f"training_iteration must be positive, got {training_iteration}")
    atomic_export.check_can_export(export_base, model_version, overwrite)
    with tf.Graph().as_default(), tf.Session() as sess:
        if seed is not None:
            tf.set_random_seed(seed)
        serialized_tf_example, x = serving_input()
        model = build_model(x)
        sess.run(tf.global_variables_initializer())
        start = time.time()
        classifier_graph.train(
            sess, model, data.train, training_iteration, batch_size, progress=progress
        )
        seconds = time.time() - start
        accuracy = classifier_graph.evaluate(sess, model, data.test.images, data.test.labels)
        test_scores = classifier_graph.predict(sess, model, data.test.images)
        logger.info(
            "trained %d iterations in %.1f s; test accuracy %.4f",
            training_iteration,
            seconds,
            accuracy,
        )
        signatures = build_signatures(serialized_tf_example, x, model.scores)
        path = export_session(sess, export_base, model_version, signatures, overwrite)
    return ExportResult(path, accuracy, seconds, test_scores)


def serialize_examples(images: np.ndarray) -> list[bytes]:
    """Serialized tf.Example protos with feature `x` (784 floats), what Classify takes."""
    examples = []
    for image in np.asarray(images, dtype=np.float32).reshape(-1, 784):
        example = tf.train.Example(
            features=tf.train.Features(
                feature={FEATURE: tf.train.Feature(float_list=tf.train.FloatList(value=image))}
            )
        )
        examples.append(example.SerializeToString())
    return examples


@dataclasses.dataclass
class SignatureOutputs:
    """What an exported MNIST model answers for a batch of images, per signature."""

    predict_scores: np.ndarray  # predict_images: [N, 10] probabilities by class id
    classify_classes: np.ndarray  # serving_default: [N, 10] class labels, best first
    classify_scores: np.ndarray  # serving_default: [N, 10] their probabilities


def run_export_v1(export_path: str, images: np.ndarray) -> SignatureOutputs:
    """Runs both signatures through the TF1 loader (Session + SignatureDef tensor names).

    This is how a TF1-era server (and upstream's C++ one) uses an export;
    together with `run_export_tf2` it checks an export serves in both worlds.
    """
    with tf.Graph().as_default(), tf.Session() as sess:
        meta_graph = tf.saved_model.loader.load(
            sess, [tf.saved_model.tag_constants.SERVING], export_path
        )
        predict = meta_graph.signature_def[PREDICT_SIGNATURE]
        classify = meta_graph.signature_def[CLASSIFY_SIGNATURE]
        scores = sess.run(
            predict.outputs["scores"].name, feed_dict={predict.inputs["images"].name: images}
        )
        classes, top_scores = sess.run(
            [classify.outputs["classes"].name, classify.outputs["scores"].name],
            feed_dict={classify.inputs["inputs"].name: serialize_examples(images)},
        )
    return SignatureOutputs(scores, classes, top_scores)


def run_export_tf2(export_path: str, images: np.ndarray) -> SignatureOutputs:
    """Runs both signatures through `tf.saved_model.load` (needs eager execution)."""
    import tensorflow as tf2

    loaded = tf2.saved_model.load(export_path)
    predict = loaded.signatures[PREDICT_SIGNATURE]
    classify = loaded.signatures[CLASSIFY_SIGNATURE]
    scores = predict(images=tf2.constant(images, dtype=tf2.float32))["scores"].numpy()
    outputs = classify(inputs=tf2.constant(serialize_examples(images)))
    return SignatureOutputs(scores, outputs["classes"].numpy(), outputs["scores"].numpy())
