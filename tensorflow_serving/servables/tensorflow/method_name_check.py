"""--enable_signature_method_name_check: Predict, Classify and Regress refuse a
signature whose method_name is not theirs (upstream: Set/GetSignatureMethodName
CheckFeature in servables/tensorflow/util.h).

Off by default, as upstream: TF2's tf.saved_model.save writes every signature
with the predict method name, so classify/regress signatures of TF2 models
only serve with the check off. One switch for the whole process, set once at
start-up before any request, as upstream's is; reading it needs no lock.
"""

from __future__ import annotations

from tensorflow_serving.servables.tensorflow.saved_model_bundle import Signature
from tensorflow_serving.util import status

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

_enabled = False


def set_enabled(enabled: bool) -> None:
    """Turns the check on or off for every later request of this process."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def check_predict(signature: Signature) -> None:
    """With the check on: INTERNAL unless the method is predict, classify or regress
    (upstream's code and words)."""
    if _enabled and signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise status.internal(
            "Expected prediction signature method_name to be one of {"
            f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}"
        )


def check_classify(signature: Signature) -> None:
    """With the check on: INVALID_ARGUMENT unless the method is classify."""
    _check(signature, CLASSIFY_METHOD, "classification")


def check_regress(signature: Signature) -> None:
    """With the check on: INVALID_ARGUMENT unless the method is regress."""
    _check(signature, REGRESS_METHOD, "regression")


def _check(signature: Signature, method: str, kind: str) -> None:
    if _enabled and signature.method_name != method:
        raise status.invalid_argument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
