"""The command line the chapter's exporters share.

    serving_model_ch4.py [--training_iteration=x] [--model_version=y] \
        [--work_dir=dir] [--overwrite] [--verbose] export_dir

Same flags, usage message and positive-value checks as upstream's
mnist_saved_model; `--overwrite` (an existing version is refused without it)
and `--verbose` (TensorFlow's start-up logs, see quiet_tensorflow) are ours.
Training prints its progress (see training_progress). Each exporter passes
its own `train_and_export` function.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from tensorflow_serving.example import atomic_export, mnist_input_data, quiet_tensorflow
from tensorflow_serving.example.mnist_signatures import ExportResult
from tensorflow_serving.example.training_progress import TrainingProgress

TrainAndExport = Callable[..., ExportResult]


class _Parser(argparse.ArgumentParser):
    """argparse that prints the chapter's usage line and exits 2 on bad flags."""

    def __init__(self, prog: str, usage: str):
        super().__init__(prog=prog, usage=usage, add_help=True)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"Usage: {self.usage}\nerror: {message}\n")
        sys.exit(2)


def main(prog: str, train_and_export: TrainAndExport, argv: Sequence[str] | None = None) -> int:
    """Parses flags, trains, exports and prints the chapter's lines; returns the exit code."""
    usage = (
        f"{prog} [--training_iteration=x] [--model_version=y] [--work_dir=dir] [--overwrite] "
        "[--verbose] export_dir"
    )
    parser = _Parser(prog, usage)
    parser.add_argument(
        "--training_iteration", type=int, default=1000, help="number of training iterations."
    )
    parser.add_argument("--model_version", type=int, default=1, help="version number of the model.")
    parser.add_argument("--work_dir", default="/tmp", help="Working directory (MNIST data).")
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace the version if it already exists."
    )
    quiet_tensorflow.add_verbose_flag(parser)
    parser.add_argument("export_dir", help="Base path; the model goes to export_dir/model_version.")
    args = parser.parse_args(argv)
    if args.training_iteration <= 0:
        print("Please specify a positive value for training iteration.")
        return 2
    if args.model_version <= 0:
        print("Please specify a positive value for version number.")
        return 2
    try:
        atomic_export.check_can_export(args.export_dir, args.model_version, args.overwrite)
    except atomic_export.VersionExistsError as e:
        print(f"Error: {e}")
        return 1

    start = time.time()
    print("Training model...")
    data = mnist_input_data.read_data_sets(args.work_dir, one_hot=True)
    with TrainingProgress(args.training_iteration) as progress:
        result = train_and_export(
            args.export_dir,
            model_version=args.model_version,
            training_iteration=args.training_iteration,
            data=data,
            overwrite=args.overwrite,
            progress=progress,
        )
    print(f"training accuracy {result.test_accuracy:g}")
    print("Done training!")
    print(f"Exporting trained model to {result.export_path}")
    print("new model exported!")
    print(
        f"({args.training_iteration} iterations; training {result.train_seconds:.1f} s, "
        f"total {time.time() - start:.1f} s)"
    )
    return 0
