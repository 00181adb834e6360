"""The exporters' command line: the chapter's usage line, positive checks, refusal, output."""

import os
import sys

import numpy as np
import pytest

from tensorflow_serving.example import exporter_cli, mnist_input_data
from tensorflow_serving.example.mnist_signatures import ExportResult
from tensorflow_serving.test_util import testing


class FakeExporter:
    """Records its call instead of training; what exporter_cli hands to an exporter."""

    def __init__(self):
        self.calls = []

    def __call__(self, export_base, **kwargs):
        self.calls.append((export_base, kwargs))
        path = os.path.join(export_base, str(kwargs["model_version"]))
        os.makedirs(path)
        return ExportResult(path, 0.9375, 1.5, np.zeros((1, 10)))


@pytest.fixture()
def work_dir(tmp_path):
    path = str(tmp_path / "mnist")
    mnist_input_data.write_synthetic_data_sets(path, num_train=20, num_test=10)
    return path


def test_missing_export_dir_prints_the_usage_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        exporter_cli.main("serving_model_ch4.py", FakeExporter(), ["--training_iteration=5"])
    assert exit_info.value.code == 2
    assert (
        "Usage: serving_model_ch4.py [--training_iteration=x] [--model_version=y]"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--training_iteration=0", "Please specify a positive value for training iteration."),
        ("--model_version=-3", "Please specify a positive value for version number."),
    ],
)
def test_non_positive_values_are_refused(tmp_path, capsys, flag, message):
    exporter = FakeExporter()
    assert exporter_cli.main("x.py", exporter, [flag, str(tmp_path)]) == 2
    assert message in capsys.readouterr().out
    assert exporter.calls == []


def test_existing_version_is_refused_before_training(tmp_path, work_dir, capsys):
    os.makedirs(str(tmp_path / "out" / "2"))
    exporter = FakeExporter()
    args = ["--model_version=2", f"--work_dir={work_dir}", str(tmp_path / "out")]
    assert exporter_cli.main("x.py", exporter, args) == 1
    assert "version 2 already exists" in capsys.readouterr().out
    assert exporter.calls == []


def test_passes_flags_and_prints_the_chapters_lines(tmp_path, work_dir, capsys):
    exporter = FakeExporter()
    out_dir = str(tmp_path / "out")
    args = ["--training_iteration=7", "--model_version=3", f"--work_dir={work_dir}", out_dir]
    assert exporter_cli.main("x.py", exporter, args) == 0
    ((export_base, kwargs),) = exporter.calls
    assert export_base == out_dir
    assert kwargs["training_iteration"] == 7
    assert kwargs["model_version"] == 3
    assert kwargs["overwrite"] is False
    assert kwargs["data"].test.num_examples == 10
    out = capsys.readouterr().out
    assert "training accuracy 0.9375" in out
    assert f"Exporting trained model to {os.path.join(out_dir, '3')}" in out
    assert "new model exported!" in out


def test_overwrite_flag_is_passed_on(tmp_path, work_dir):
    os.makedirs(str(tmp_path / "out" / "1"))
    calls = []

    def replace(export_base, **kwargs):
        calls.append(kwargs)
        return ExportResult(os.path.join(export_base, "1"), 1.0, 0.1, np.zeros((1, 10)))

    args = ["--overwrite", f"--work_dir={work_dir}", str(tmp_path / "out")]
    assert exporter_cli.main("x.py", replace, args) == 0
    assert calls[0]["overwrite"] is True


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
