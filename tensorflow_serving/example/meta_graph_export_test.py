"""A meta graph with the 'train_var' collection restores without model code, exactly."""

import os
import sys

import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from tensorflow_serving.example import meta_graph_export, mnist_input_data
from tensorflow_serving.test_util import testing


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=300, num_test=200)
    return mnist_input_data.read_data_sets(path, one_hot=True, validation_size=0, source_url=None)


def test_restore_through_the_collection_gives_the_same_accuracy(data, tmp_path):
    export = meta_graph_export.train_and_export_meta_graph(data, str(tmp_path), steps=30)
    assert os.path.basename(export.meta_graph_path) == "model_ckpt.meta"
    assert export.checkpoint_path.endswith("model_ckpt-30")
    restored = meta_graph_export.restore_from_meta_graph(
        export.meta_graph_path, export.checkpoint_path, data.test.images, data.test.labels
    )
    assert export.accuracy > 0.5
    assert restored == export.accuracy


def test_meta_graph_holds_only_the_train_var_collection(data, tmp_path):
    export = meta_graph_export.train_and_export_meta_graph(data, str(tmp_path), steps=1)
    proto = meta_graph_pb2.MetaGraphDef()
    with open(export.meta_graph_path, "rb") as f:
        proto.ParseFromString(f.read())
    assert list(proto.collection_def) == ["train_var"]
    assert len(proto.collection_def["train_var"].node_list.value) == 3


def test_main_prints_both_accuracies(tmp_path, capsys):
    work = str(tmp_path / "mnist")
    mnist_input_data.write_synthetic_data_sets(work, num_train=200, num_test=100)
    code = meta_graph_export.main(
        [f"--work_dir={work}", f"--output_dir={tmp_path / 'm'}", "--steps=20"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Accuracy before export: " in out
    assert "Accuracy after import_meta_graph + restore: " in out


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
