"""Classify over tf.Examples, for TF1 classify signatures and TF2 predict-named ones."""

import sys

import pytest

from tensorflow_serving.apis import classification_pb2, input_pb2
from tensorflow_serving.servables.tensorflow import classifier
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def examples(*values, context=None):
    proto = input_pb2.Input()
    target = proto.example_list if context is None else proto.example_list_with_context
    for value in values:
        target.examples.add().features.feature["x"].float_list.value.append(value)
    if context is not None:
        for key, value in context.items():
            target.context.features.feature[key].float_list.value.append(value)
    return proto


def request(signature, input_proto):
    req = classification_pb2.ClassificationRequest(input=input_proto)
    req.model_spec.name = "hp"
    req.model_spec.signature_name = signature
    return req


def test_classify_gives_one_score_list_per_example(model):
    response = classifier.classify_response(model, request("classify_x_to_y", examples(1.0, 4.0)))
    scores = [[c.score for c in cl.classes] for cl in response.result.classifications]
    assert scores == [[2.5], [4.0]]
    assert response.model_spec.signature_name == "classify_x_to_y"
    assert response.model_spec.version.value == model.version


def test_context_features_merge_into_each_example(tf1):
    proto = examples(2.0, context={"x2": 1.0})
    response = classifier.classify_response(tf1, request("classify_x_to_y", proto))
    assert [cl.classes[0].score for cl in response.result.classifications] == [3.0]


def test_empty_input_and_unknown_signature(model):
    with pytest.raises(status.ServingError, match="Input is empty"):
        classifier.classify_response(model, request("classify_x_to_y", input_pb2.Input()))
    with pytest.raises(status.ServingError, match="No signature was found with the name: nope"):
        classifier.classify_response(model, request("nope", examples(1.0)))


def test_signature_without_classes_or_scores_is_rejected(model):
    with pytest.raises(status.ServingError, match="classes' or 'scores'"):
        classifier.classify_response(model, request("regress_x_to_y", examples(1.0)))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
