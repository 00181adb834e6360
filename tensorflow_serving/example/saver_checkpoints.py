"""Workflow 2 of the chapter: rotating Saver checkpoints, and restoring them.

Training saves a checkpoint every `save_every` (50) steps with
`tf.train.Saver(max_to_keep=7, keep_checkpoint_every_n_hours=...)` and
`global_step` in the file names (`model_ckpt-50`, `model_ckpt-100`, ...).
What the directory then holds is the Saver's promise:

- the `max_to_keep` newest checkpoints, and
- "hourly keepers": when a checkpoint falls out of the newest window, it is
  kept for good if it was written more than `keep_checkpoint_every_n_hours`
  after the previous keeper (or after the Saver was made); the next keeper
  must then be another period later.

The `checkpoint` state file lists the newest ones (the Saver's
`last_checkpoints`; keepers are on disk but no longer listed there), with
`model_checkpoint_path` the latest. A restore builds the same model in a fresh
graph and loads a named checkpoint or the latest one; a graph whose variable
names or shapes differ from the checkpoint's is a `CheckpointMismatchError`
that says which key is missing and how to fix it, rather than TensorFlow's
raw NotFoundError stack trace.

    bazel run //tensorflow_serving/example:saver_checkpoints -- --output_dir=/tmp/ckpt
"""

from __future__ import annotations

# Before anything imports tensorflow: its start-up logs off unless asked for.
from tensorflow_serving.example import quiet_tensorflow  # isort: skip

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import tensorflow.compat.v1 as tf

from tensorflow_serving.example import classifier_graph, mnist_input_data, mnist_softmax
from tensorflow_serving.example.training_progress import StepReport, TrainingProgress

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "model_ckpt"
SAVE_EVERY = 50
MAX_TO_KEEP = 7
KEEP_CHECKPOINT_EVERY_N_HOURS = 1.0


class CheckpointMismatchError(ValueError):
    """A checkpoint's variables do not match the graph it is restored into."""


@dataclasses.dataclass
class TrainResult:
    """What a checkpointed training run produced."""

    accuracy: float
    saved: list[str]  # every checkpoint prefix written, in order
    last_checkpoints: list[str]  # the Saver's newest window, oldest first


def train_with_checkpoints(
    data: mnist_input_data.DataSets,
    checkpoint_dir: str,
    steps: int = mnist_softmax.NUM_STEPS,
    save_every: int = SAVE_EVERY,
    max_to_keep: int = MAX_TO_KEEP,
    keep_checkpoint_every_n_hours: float = KEEP_CHECKPOINT_EVERY_N_HOURS,
    batch_size: int = mnist_softmax.MINIBATCH_SIZE,
    progress: StepReport | None = None,
) -> TrainResult:
    """Trains the softmax model, saving a checkpoint every `save_every` steps.

    `progress(step, loss)` follows the training.
    """
    if save_every <= 0:
        raise ValueError(f"save_every must be positive, got {save_every}")
    os.makedirs(checkpoint_dir, exist_ok=True)
    prefix = os.path.join(checkpoint_dir, CHECKPOINT_PREFIX)
    saved: list[str] = []
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        saver = tf.train.Saver(
            max_to_keep=max_to_keep, keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours
        )
        sess.run(tf.global_variables_initializer())

        def on_step(step: int) -> None:
            if step % save_every == 0:
                saved.append(saver.save(sess, prefix, global_step=step))
                logger.info("saved %s", saved[-1])

        classifier_graph.train(sess, model, data.train, steps, batch_size, on_step, progress)
        accuracy = classifier_graph.evaluate(sess, model, data.test.images, data.test.labels)
        return TrainResult(accuracy, saved, list(saver.last_checkpoints))


def latest_checkpoint(checkpoint_dir: str) -> str:
    """The checkpoint the `checkpoint` state file names as latest; a clear error if none."""
    path = tf.train.latest_checkpoint(checkpoint_dir)
    if path is None:
        raise CheckpointMismatchError(
            f"no checkpoint in {checkpoint_dir}: its `checkpoint` state file is missing or "
            "names no existing checkpoint"
        )
    return path


def check_checkpoint_matches(checkpoint_path: str, var_list: Sequence[Any]) -> None:
    """Raises CheckpointMismatchError unless every variable is in the checkpoint, same shape."""
    try:
        reader = tf.train.load_checkpoint(checkpoint_path)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise CheckpointMismatchError(f"cannot read checkpoint {checkpoint_path}: {e}") from e
    in_checkpoint = reader.get_variable_to_shape_map()
    for var in var_list:
        name = var.op.name
        want = var.shape.as_list()
        if name not in in_checkpoint:
            held = ", ".join(f"{k} {v}" for k, v in sorted(in_checkpoint.items()))
            raise CheckpointMismatchError(
                f"checkpoint {checkpoint_path} has no variable {name!r} (shape {want}) that "
                f"the graph needs; it holds: {held}. Variable names are given in build order, "
                "so building the model a second time in the same graph makes 'Variable_1' "
                "instead of 'Variable': call tf.reset_default_graph() (or build inside a fresh "
                "`with tf.Graph().as_default():`) before rebuilding the model, or pass "
                "var_list={checkpoint_name: variable} to tf.train.Saver"
            )
        if list(in_checkpoint[name]) != want:
            raise CheckpointMismatchError(
                f"variable {name!r} has shape {want} in the graph but "
                f"{list(in_checkpoint[name])} in checkpoint {checkpoint_path}: the model "
                "was built with different sizes than the one that saved it"
            )


def restore_checkpoint(
    sess: tf.Session,
    saver: tf.train.Saver,
    checkpoint_path: str,
    var_list: Sequence[Any] | None = None,
) -> None:
    """`saver.restore`, after checking names and shapes so a mismatch says how to fix it.

    `var_list` defaults to all global variables of the session's graph, which
    is what a `tf.train.Saver()` without arguments saves and restores.
    """
    if var_list is None:
        var_list = sess.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
    check_checkpoint_matches(checkpoint_path, var_list)
    saver.restore(sess, checkpoint_path)


def restore_and_evaluate(data: mnist_input_data.DataSets, checkpoint_path: str) -> float:
    """Builds the softmax model in a fresh graph, restores `checkpoint_path`, returns accuracy."""
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        saver = tf.train.Saver()
        restore_checkpoint(sess, saver, checkpoint_path)
        return classifier_graph.evaluate(sess, model, data.test.images, data.test.labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", default="/tmp", help="MNIST data directory.")
    parser.add_argument("--output_dir", default="/tmp/saver_checkpoints")
    parser.add_argument("--steps", type=int, default=mnist_softmax.NUM_STEPS)
    parser.add_argument("--save_every", type=int, default=SAVE_EVERY)
    parser.add_argument("--max_to_keep", type=int, default=MAX_TO_KEEP)
    parser.add_argument(
        "--keep_checkpoint_every_n_hours", type=float, default=KEEP_CHECKPOINT_EVERY_N_HOURS
    )
    quiet_tensorflow.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.save_every <= 0:
        print(f"--steps and --save_every must be positive, got {args.steps}, {args.save_every}")
        return 2

    data = mnist_input_data.read_data_sets(args.work_dir, one_hot=True)
    start = time.time()
    with TrainingProgress(args.steps) as progress:
        result = train_with_checkpoints(
            data,
            args.output_dir,
            args.steps,
            args.save_every,
            args.max_to_keep,
            args.keep_checkpoint_every_n_hours,
            progress=progress,
        )
    print(f"Accuracy after training: {result.accuracy:.4f} ({time.time() - start:.1f} s)")
    print(f"Saved {len(result.saved)} checkpoints; the Saver keeps:")
    for path in result.last_checkpoints:
        print(f"  {path}")
    latest = latest_checkpoint(args.output_dir)
    named = result.last_checkpoints[0]
    accuracies = {}
    for label, path in (("latest", latest), ("named", named)):
        accuracies[label] = restore_and_evaluate(data, path)
        print(f"Accuracy after restoring {label} checkpoint {path}: {accuracies[label]:.4f}")
    # The latest checkpoint is the trained model only if the last step saved one.
    if args.steps % args.save_every == 0 and accuracies["latest"] != result.accuracy:
        print("Restored accuracy differs from the accuracy before saving")
        return 1
    return 0


if __name__ == "__main__":
    tf.disable_v2_behavior()
    sys.exit(main())
