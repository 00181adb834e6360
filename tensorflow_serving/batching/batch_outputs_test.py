"""batch_outputs: each task of a batch gets its rows of every output, read-only."""

import sys
import threading

import numpy as np
import pytest

from tensorflow_serving.batching.batch_outputs import BatchOutputs, OutputRows
from tensorflow_serving.test_util import testing


def make_batch() -> BatchOutputs:
    return BatchOutputs(
        {
            "scores": np.arange(32 * 10, dtype=np.float32).reshape(32, 10),
            "classes": np.arange(32, dtype=np.int64),
        }
    )


def test_a_slice_maps_each_output_to_its_rows():
    batch = make_batch()
    rows = batch.slice(4, 7)
    assert isinstance(rows, OutputRows)
    assert batch.rows == 32 and (rows.batch, rows.start, rows.stop) == (batch, 4, 7)
    assert list(rows) == ["scores", "classes"] and len(rows) == 2
    assert "scores" in rows and "missing" not in rows
    np.testing.assert_array_equal(rows["scores"], batch.outputs["scores"][4:7])
    assert rows["classes"].tolist() == [4, 5, 6]
    assert {alias: array.shape for alias, array in rows.items()} == {
        "scores": (3, 10),
        "classes": (3,),
    }
    with pytest.raises(KeyError):
        rows["missing"]


def test_slices_are_views_of_the_batch_not_copies():
    batch = make_batch()
    assert np.shares_memory(batch.slice(0, 1)["scores"], batch.outputs["scores"])


def test_outputs_are_read_only_so_no_task_writes_into_anothers_rows():
    scores = np.zeros((4, 2), np.float32)
    batch = BatchOutputs({"scores": scores})
    with pytest.raises(ValueError):
        batch.slice(0, 1)["scores"][0, 0] = 1.0
    with pytest.raises(ValueError):
        scores[3, 1] = 1.0  # the caller handed the array over


@pytest.mark.parametrize("start, stop", [(-1, 2), (3, 2), (0, 33)])
def test_a_slice_must_lie_within_the_batch(start, stop):
    with pytest.raises(ValueError, match="not within a batch of 32 rows"):
        make_batch().slice(start, stop)


def test_an_empty_slice_and_a_whole_slice_are_allowed():
    batch = make_batch()
    assert batch.slice(32, 32)["classes"].shape == (0,)
    assert batch.slice(0, 32)["classes"].shape == (32,)


def test_outputs_must_share_their_first_dimension():
    with pytest.raises(ValueError, match="share their first dimension"):
        BatchOutputs({"a": np.zeros((2, 3)), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="share their first dimension"):
        BatchOutputs({"a": np.zeros(())})


def test_a_batch_without_outputs_gives_every_task_an_empty_mapping():
    batch = BatchOutputs({})
    assert batch.rows == 0
    assert dict(batch.slice(0, 5)) == {}


def test_memo_computes_once_per_key_and_batch():
    calls = []

    def compute(value):
        calls.append(value)
        return value

    batch, other = make_batch(), make_batch()
    assert batch.memo(("enc", "scores"), lambda: compute(1)) == 1
    assert batch.memo(("enc", "scores"), lambda: compute(2)) == 1  # kept
    assert batch.memo(("enc", "classes"), lambda: compute(3)) == 3  # another key
    assert other.memo(("enc", "scores"), lambda: compute(4)) == 4  # another batch
    assert calls == [1, 3, 4]


def test_memo_keeps_nothing_when_compute_raises():
    batch = make_batch()

    def fail():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        batch.memo("key", fail)
    assert batch.memo("key", lambda: "computed") == "computed"


def test_threads_racing_on_a_new_key_all_get_the_one_result_kept():
    batch = make_batch()
    both_computing = threading.Barrier(2, timeout=30)
    results = []

    def compute():
        both_computing.wait()  # neither has kept its result yet
        return object()

    def task():
        results.append(batch.memo("key", compute))

    threads = [threading.Thread(target=task) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] is results[1]
    assert batch.memo("key", object) is results[0]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
