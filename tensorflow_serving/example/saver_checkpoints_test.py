"""The Saver keeps exactly what it promises, restores exactly, and explains mismatches."""

import os
import sys

import pytest
import tensorflow.compat.v1 as tf
from tensorflow.python.training import saver as saver_module

from tensorflow_serving.example import mnist_input_data, mnist_softmax, saver_checkpoints
from tensorflow_serving.test_util import testing


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=300, num_test=200)
    return mnist_input_data.read_data_sets(path, one_hot=True, validation_size=0, source_url=None)


class FakeClock:
    """Stands in for the `time` module the Saver reads; each save moves it 11 minutes."""

    def __init__(self):
        self.now = 1_000_000.0

    def time(self):
        return self.now


def _files(path):
    return sorted(os.listdir(path))


def _checkpoint_files(prefixes):
    names = ["checkpoint"]
    for prefix in prefixes:
        base = os.path.basename(prefix)
        names += [f"{base}.data-00000-of-00001", f"{base}.index", f"{base}.meta"]
    return sorted(names)


def test_directory_holds_the_7_newest_plus_hourly_keepers(data, tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(saver_module, "time", clock)
    real_save = tf.train.Saver.save

    def save_and_tick(self, *args, **kwargs):
        clock.now += 11 * 60  # the k-th save happens at 11k minutes
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.Saver, "save", save_and_tick)
    result = saver_checkpoints.train_with_checkpoints(
        data, str(tmp_path), steps=1000, save_every=50, keep_checkpoint_every_n_hours=1.0
    )
    # 20 saves at 11, 22, ..., 220 minutes. Saves 1-13 leave the window of 7:
    # the 6th (66 min) is the first more than an hour after the Saver was
    # made, the 11th (121 min) the first more than an hour after that one.
    prefix = os.path.join(str(tmp_path), "model_ckpt")
    newest = [f"{prefix}-{step}" for step in range(700, 1001, 50)]
    keepers = [f"{prefix}-300", f"{prefix}-550"]
    assert result.saved == [f"{prefix}-{step}" for step in range(50, 1001, 50)]
    assert result.last_checkpoints == newest
    assert _files(str(tmp_path)) == _checkpoint_files(keepers + newest)

    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == f"{prefix}-1000"
    # The state file lists the Saver's window; hourly keepers stay on disk unlisted.
    assert list(state.all_model_checkpoint_paths) == newest


def test_without_hourly_keepers_only_the_newest_remain(data, tmp_path):
    result = saver_checkpoints.train_with_checkpoints(
        data, str(tmp_path), steps=500, save_every=50, keep_checkpoint_every_n_hours=10000.0
    )
    assert _files(str(tmp_path)) == _checkpoint_files(result.last_checkpoints)
    assert len(result.last_checkpoints) == 7


def test_latest_and_named_restores_give_the_same_accuracy_exactly(data, tmp_path):
    result = saver_checkpoints.train_with_checkpoints(data, str(tmp_path), steps=200, save_every=50)
    latest = saver_checkpoints.latest_checkpoint(str(tmp_path))
    assert latest == result.saved[-1]
    assert saver_checkpoints.restore_and_evaluate(data, latest) == result.accuracy
    # An earlier, named checkpoint restores to what the model was then.
    early = saver_checkpoints.restore_and_evaluate(data, result.saved[0])
    assert 0.0 < early <= 1.0


def test_graph_built_twice_reports_the_missing_key_and_the_fix(data, tmp_path):
    result = saver_checkpoints.train_with_checkpoints(data, str(tmp_path), steps=50, save_every=50)
    with tf.Graph().as_default(), tf.Session() as sess:
        mnist_softmax.build_softmax()  # a first copy: "Variable"
        mnist_softmax.build_softmax()  # the second copy is "Variable_1"
        saver = tf.train.Saver()
        with pytest.raises(
            saver_checkpoints.CheckpointMismatchError,
            match=r"has no variable 'Variable_1' .*tf.reset_default_graph\(\)",
        ):
            saver_checkpoints.restore_checkpoint(sess, saver, result.saved[-1])


def test_shape_mismatch_names_the_variable_and_both_shapes(data, tmp_path):
    result = saver_checkpoints.train_with_checkpoints(data, str(tmp_path), steps=50, save_every=50)
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.Variable(tf.zeros([784, 5]))
        saver = tf.train.Saver()
        with pytest.raises(
            saver_checkpoints.CheckpointMismatchError,
            match=r"'Variable' has shape \[784, 5\] in the graph but \[784, 10\] in checkpoint",
        ):
            saver_checkpoints.restore_checkpoint(sess, saver, result.saved[-1])


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(saver_checkpoints.CheckpointMismatchError, match="no checkpoint in"):
        saver_checkpoints.latest_checkpoint(str(tmp_path))


def test_main_prints_accuracies(tmp_path, capsys):
    work = str(tmp_path / "mnist")
    mnist_input_data.write_synthetic_data_sets(work, num_train=200, num_test=100)
    code = saver_checkpoints.main(
        [f"--work_dir={work}", f"--output_dir={tmp_path / 'ckpt'}", "--steps=100"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Accuracy after training: " in out
    assert "Accuracy after restoring latest checkpoint " in out
    assert "Accuracy after restoring named checkpoint " in out


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
