"""Calls that only read state may be rerun; anything that writes, prints or draws
from a seeded random stream may not, in TF1 graphs and inside TF2 functions alike."""

import sys

import tensorflow as tf

from tensorflow_serving.servables.tensorflow.graph_side_effects import first_side_effect
from tensorflow_serving.test_util import testing


def _tf1_graph(build):
    """GraphDef, feed and fetch names of a TF1 graph: x -> build(x, w)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        w = tf.compat.v1.Variable(2.0, name="w")
        y = build(x, w)
    return graph.as_graph_def(), [x.name], [y.name]


def test_reading_variables_changes_nothing():
    graph_def, feeds, fetches = _tf1_graph(lambda x, w: x * w.read_value())
    assert first_side_effect(graph_def, feeds, fetches) is None


def test_updating_a_variable_is_a_side_effect():
    def count_calls(x, w):
        with tf.control_dependencies([w.assign_add(1.0)]):
            return tf.identity(x)

    graph_def, feeds, fetches = _tf1_graph(count_calls)
    assert first_side_effect(graph_def, feeds, fetches) == "AssignAddVariableOp"


def test_seeded_random_numbers_and_printing_are_side_effects():
    graph_def, feeds, fetches = _tf1_graph(lambda x, w: x + tf.random.uniform([], seed=7))
    assert first_side_effect(graph_def, feeds, fetches) == "RandomUniform (seeded)"

    def seeded_graph(x, w):
        tf.compat.v1.set_random_seed(3)  # a graph-level seed seeds every op after it
        return tf.nn.dropout(x, rate=0.5)

    graph_def, feeds, fetches = _tf1_graph(seeded_graph)
    assert first_side_effect(graph_def, feeds, fetches) == "RandomUniform (seeded)"

    def printed(x, w):
        with tf.control_dependencies([tf.print(x)]):
            return tf.identity(x)

    graph_def, feeds, fetches = _tf1_graph(printed)
    assert first_side_effect(graph_def, feeds, fetches) == "PrintV2"


def test_unseeded_random_numbers_may_be_drawn_again():
    """A CNN's dropout with keep_prob defaulting to 1, as the chapter's export has."""

    def dropout(x, w):
        keep_prob = tf.compat.v1.placeholder_with_default(1.0, shape=[])
        return tf.nn.dropout(x * w.read_value(), rate=1.0 - keep_prob)

    graph_def, feeds, fetches = _tf1_graph(dropout)
    assert any(node.op == "RandomUniform" for node in graph_def.node)
    assert first_side_effect(graph_def, feeds, fetches) is None


def test_only_the_part_of_the_graph_a_call_runs_counts():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        w = tf.compat.v1.Variable(2.0, name="w")
        y = x * w.read_value()
        train = w.assign_add(1.0)  # in the graph, not run when fetching y
        fed = tf.identity(w.assign_add(1.0), name="fed")  # fed: its producer does not run
        z = fed + 1.0
    graph_def = graph.as_graph_def()
    assert first_side_effect(graph_def, [x.name], [y.name]) is None
    assert first_side_effect(graph_def, [fed.name], [z.name]) is None
    assert first_side_effect(graph_def, [], [train.name]) == "AssignAddVariableOp"


def _tf2_graph(body):
    """GraphDef of a TF1 graph that calls `body` as a TF2 function (StatefulPartitionedCall)."""
    w = tf.Variable(2.0)
    function = tf.function(lambda x: body(x, w))
    concrete = function.get_concrete_function(tf.TensorSpec([None], tf.float32))
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        handle = tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="w")
        call = tf.raw_ops.StatefulPartitionedCall(
            args=[x, handle], Tout=[tf.float32], f=concrete.function_def.signature.name
        )[0]
    outer = graph.as_graph_def()
    outer.library.function.add().CopyFrom(concrete.function_def)
    return outer, [x.name], [call.name]


def test_functions_the_call_runs_are_searched():
    graph_def, feeds, fetches = _tf2_graph(lambda x, w: x * w)
    assert first_side_effect(graph_def, feeds, fetches) is None

    def counting(x, w):
        w.assign_add(1.0)
        return x * w

    graph_def, feeds, fetches = _tf2_graph(counting)
    assert first_side_effect(graph_def, feeds, fetches) == "AssignAddVariableOp"


def test_unknown_ops_and_functions_count_as_side_effects():
    graph_def, feeds, fetches = _tf1_graph(lambda x, w: tf.identity(x, name="y"))
    node = next(n for n in graph_def.node if n.name == "y")
    node.op = "NoSuchOp"
    assert first_side_effect(graph_def, feeds, fetches) == "unknown op NoSuchOp"
    node.op = "PartitionedCall"
    node.attr["f"].func.name = "missing_function"
    assert (
        first_side_effect(graph_def, feeds, fetches) == "call of unknown function missing_function"
    )


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
