"""Writes a TF1 session's graph as a SavedModel with Predict signatures.

The test models that are not half_plus_two (a model whose load fails, a
string echo, a model with inputs of three dtypes) differ only in their graph;
the SavedModelBuilder steps that turn a session into an export are the same,
so they live here once.
"""

from __future__ import annotations

import tensorflow.compat.v1 as tf

Tensors = dict[str, tf.Tensor]


def save_predict_model(
    session: tf.Session,
    export_dir: str,
    inputs: Tensors,
    outputs: Tensors,
    *,
    main_op: tf.Operation | None = None,
) -> None:
    """Saves `session` to `export_dir` (tag "serve") with `inputs` -> `outputs` as
    the Predict signature serving_default; `main_op` runs once after each load."""
    save_predict_signatures(session, export_dir, {"serving_default": (inputs, outputs)}, main_op)


def save_predict_signatures(
    session: tf.Session,
    export_dir: str,
    signatures: dict[str, tuple[Tensors, Tensors]],
    main_op: tf.Operation | None = None,
) -> None:
    """Saves `session` to `export_dir` (tag "serve") with one Predict signature per
    name in `signatures` (its inputs -> its outputs)."""
    info = tf.saved_model.utils.build_tensor_info
    signature_def_map = {
        name: tf.saved_model.signature_def_utils.build_signature_def(
            {alias: info(tensor) for alias, tensor in inputs.items()},
            {alias: info(tensor) for alias, tensor in outputs.items()},
            tf.saved_model.signature_constants.PREDICT_METHOD_NAME,
        )
        for name, (inputs, outputs) in signatures.items()
    }
    builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
    builder.add_meta_graph_and_variables(
        session,
        [tf.saved_model.tag_constants.SERVING],
        signature_def_map=signature_def_map,
        main_op=main_op,
    )
    builder.save()
