"""What the chapter's two MNIST models share: the tensors a workflow feeds and fetches.

The softmax model (`mnist_softmax`) and the CNN (`simple_cnn`) are both TF1
graphs with a float input `x` [None, 784], one-hot labels `y_true`, a
training op and an accuracy tensor. Saving, restoring and exporting only need
those handles, so every workflow takes a `ClassifierGraph` and works for both.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from tensorflow_serving.example.training_progress import StepReport

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ClassifierGraph:
    """Handles to one classifier built in a TF1 graph.

    `train_feed` holds extra feeds for training steps only (the CNN's dropout
    keep probability); evaluation never feeds them, so placeholders with
    defaults give the inference behaviour. `loss` is the training loss the
    optimiser minimises, fetched with each step for progress reports.
    """

    x: Any
    y_true: Any
    logits: Any
    scores: Any
    accuracy: Any
    train_step: Any
    parameters: list[Any]
    train_feed: dict[Any, Any] = dataclasses.field(default_factory=dict)
    loss: Any = None


def train(
    sess: Any,
    model: ClassifierGraph,
    data_set: Any,
    steps: int,
    batch_size: int,
    on_step: Callable[[int], None] | None = None,
    progress: StepReport | None = None,
) -> None:
    """Runs `steps` minibatch steps; `on_step(step)` runs after each (1-based) step.

    The callback is how the Saver workflow checkpoints every 50 steps without
    a second training loop. `progress(step, loss)` gets the step's training
    loss too (the model must have a `loss`), for the programs' progress line.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if progress is not None and model.loss is None:
        raise ValueError("progress reports need the model's loss, but model.loss is None")
    fetches = [model.train_step] if progress is None else [model.train_step, model.loss]
    for step in range(1, steps + 1):
        images, labels = data_set.next_batch(batch_size)
        feed = {model.x: images, model.y_true: labels}
        feed.update(model.train_feed)
        fetched = sess.run(fetches, feed_dict=feed)
        if on_step is not None:
            on_step(step)
        if progress is not None:
            progress(step, float(fetched[1]))
    logger.info("trained %d steps of batch %d", steps, batch_size)


def evaluate(sess: Any, model: ClassifierGraph, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on (images, one-hot labels), computed by the graph's own accuracy op."""
    return float(sess.run(model.accuracy, feed_dict={model.x: images, model.y_true: labels}))


def predict(sess: Any, model: ClassifierGraph, images: np.ndarray) -> np.ndarray:
    """Class probabilities [N, 10] for images [N, 784]."""
    return sess.run(model.scores, feed_dict={model.x: images})
