"""Converts signatures of an exported SavedModel version into the version's `model.tflite`.

    bazel-bin/tensorflow_serving/example/saved_model_to_tflite \
        --signature_keys=predict_images /tmp/mnist_model/1

writes /tmp/mnist_model/1/model.tflite beside the SavedModel, which
`tensorflow_model_server --prefer_tflite_model` then serves instead (as the
stock server does). A signature that parses tf.Examples (the chapter's
classify `serving_default`) needs `--allow_custom_ops` (TFLite's
ParseExampleV2 is a custom op) and, for the server to run it, a file of its
own: `--signature_keys=serving_default --allow_custom_ops`. The file appears
at once, whole: it is written beside and renamed.
"""

from __future__ import annotations

import argparse
import os
import sys


def convert(saved_model_dir: str, signature_keys: list[str], allow_custom_ops: bool) -> bytes:
    """The TFLite flatbuffer of those signatures of the SavedModel."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=signature_keys
    )
    converter.allow_custom_ops = allow_custom_ops
    return converter.convert()


def write_atomically(path: str, data: bytes) -> None:
    """Writes `data` to `path` so that a reader sees no file or the whole file."""
    partial = f"{path}.partial-{os.getpid()}"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("saved_model_dir", help="a SavedModel version directory, e.g. /m/1")
    parser.add_argument(
        "--signature_keys", default="serving_default", help="comma-separated signatures"
    )
    parser.add_argument(
        "--allow_custom_ops", action="store_true", help="keep ops such as ParseExampleV2"
    )
    parser.add_argument("--output", default="", help="default: <saved_model_dir>/model.tflite")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.saved_model_dir, "saved_model.pb")):
        parser.error(f"no saved_model.pb in {args.saved_model_dir}")
    keys = [k.strip() for k in args.signature_keys.split(",") if k.strip()]
    model = convert(args.saved_model_dir, keys, args.allow_custom_ops)
    output = args.output or os.path.join(args.saved_model_dir, "model.tflite")
    write_atomically(output, model)
    print(f"wrote {output} ({len(model)} bytes; signatures {', '.join(keys)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
