"""The chapter's programs print their own lines: TensorFlow's start-up noise only when asked.

Each program runs as a child process, as a reader runs it; its output must
hold no TensorFlow C++ INFO record (oneDNN, cpu_feature_guard, ...), no absl
notice and no deprecation warning, unless `--verbose` or the user's own
TF_CPP_MIN_LOG_LEVEL asks for them. Training programs report progress as
plain lines into a pipe and as one redrawn line on a terminal.
"""

import os
import pty
import re
import subprocess
import sys

import pytest

from tensorflow_serving.example import mnist_input_data, quiet_tensorflow
from tensorflow_serving.test_util import testing

# A TensorFlow C++ INFO record, in absl's format.
INFO_RECORD = re.compile(r"^I\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]", re.MULTILINE)
NOISE = ("oneDNN", "cpu_feature_guard", "absl::InitializeLog", "is deprecated", "Deprecation")
PLAIN_PROGRESS = re.compile(r"^step +\d+/\d+  loss \d+\.\d{4}  ", re.MULTILINE)


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=200, num_test=50)
    return path


def program_args(program: str, work_dir: str, out: str) -> list[str]:
    """A quick run of each chapter program (the client has no server: it must say so)."""
    data = f"--work_dir={work_dir}"
    return {
        "save_restore_npz": [data, f"--output_dir={out}", "--steps=20"],
        "saver_checkpoints": [data, f"--output_dir={out}", "--steps=20", "--save_every=10"],
        "meta_graph_export": [data, f"--output_dir={out}", "--steps=20"],
        "serving_model_ch4": [data, "--training_iteration=3", out],
        "mnist_saved_model": [data, "--training_iteration=20", out],
        "mnist_saved_model_tf2": [data, "--training_iteration=20", out],
        "mnist_client": [data, f"--server=127.0.0.1:{testing.free_port()}", "--num_tests=1"],
    }[program]


def run(program: str, args: list[str], env_level: str | None = None) -> subprocess.CompletedProcess:
    env = testing.child_env()
    env.pop(quiet_tensorflow.LEVEL_VARIABLE, None)
    if env_level is not None:
        env[quiet_tensorflow.LEVEL_VARIABLE] = env_level
    return subprocess.run(
        [sys.executable, "-m", f"tensorflow_serving.example.{program}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


PROGRAMS = [
    "save_restore_npz",
    "saver_checkpoints",
    "meta_graph_export",
    "serving_model_ch4",
    "mnist_saved_model",
    "mnist_saved_model_tf2",
    "mnist_client",
]


@pytest.mark.parametrize("program", PROGRAMS)
def test_each_program_prints_only_its_own_lines(program, work_dir, tmp_path):
    done = run(program, program_args(program, work_dir, str(tmp_path / "out")))
    output = done.stdout + done.stderr
    if program == "mnist_client":
        assert done.returncode == 1, output
        assert done.stdout.startswith("Error: "), output
    else:
        assert done.returncode == 0, output
        progress = PLAIN_PROGRESS.findall(done.stdout)
        assert progress, f"training reports progress in plain lines:\n{done.stdout}"
        assert "\r" not in done.stdout and "\x1b" not in done.stdout, "no terminal codes in a pipe"
    assert not INFO_RECORD.search(output), output
    assert [word for word in NOISE if word in output] == [], output
    assert done.stderr == "", "TensorFlow's warnings would show here; these runs have none"


def test_verbose_brings_tensorflows_logs_and_deprecations_back(work_dir, tmp_path):
    args = program_args("save_restore_npz", work_dir, str(tmp_path / "out"))
    done = run("save_restore_npz", [*args, "--verbose"])
    assert done.returncode == 0, done.stderr
    assert INFO_RECORD.search(done.stderr), done.stderr
    assert "oneDNN" in done.stderr or "cpu_feature_guard" in done.stderr, done.stderr
    assert "is deprecated" in done.stderr, done.stderr
    assert "Accuracy after restoring from .npz" in done.stdout


def test_the_users_own_level_is_respected(work_dir, tmp_path):
    args = program_args("meta_graph_export", work_dir, str(tmp_path / "out"))
    everything = run("meta_graph_export", args, env_level="0")
    assert everything.returncode == 0, everything.stderr
    assert INFO_RECORD.search(everything.stderr), "level 0 asks for TensorFlow's INFO records"
    errors_only = run("meta_graph_export", args, env_level="2")
    assert errors_only.returncode == 0, errors_only.stderr
    assert not INFO_RECORD.search(errors_only.stderr), errors_only.stderr


def test_on_a_terminal_training_redraws_one_progress_line(work_dir, tmp_path):
    args = program_args("save_restore_npz", work_dir, str(tmp_path / "out"))
    leader, follower = pty.openpty()
    env = testing.child_env()
    env.pop(quiet_tensorflow.LEVEL_VARIABLE, None)
    child = subprocess.Popen(
        [sys.executable, "-m", "tensorflow_serving.example.save_restore_npz", *args],
        env=env,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=600) == 0, child.stderr.read()
    screen = b"".join(chunks).decode()
    lines = screen.replace("\r\n", "\n").split("\n")
    (status,) = [line for line in lines if line.startswith("\rstep")]
    last = status.split("\r")[-1]
    assert last.startswith("step 20/20  loss ") and "  took " in last, status
    assert last.endswith("\x1b[K"), "each draw erases what the one before left"
    assert lines[lines.index(status) + 1].startswith("Accuracy before saving:"), lines


def test_visible_lines_keep_what_the_level_lets_through():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1.5   12 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1.6   12 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
        "To enable the following instructions: AVX2, rebuild TensorFlow.\n"
        "W0000 00:00:1.7   12 some.cc:1] a warning\n"
        "2024-01-02 03:04:05.678901: E tensorflow/core/x.cc:9] an error\n"
        "F0000 00:00:1.8   12 fatal.cc:2] fatal\n"
    )
    lines = text.splitlines(keepends=True)
    assert quiet_tensorflow.visible_lines(text, 0) == text
    assert quiet_tensorflow.visible_lines(text, 1) == "".join(lines[4:])
    assert quiet_tensorflow.visible_lines(text, 2) == "".join(lines[5:])
    assert quiet_tensorflow.visible_lines(text, 3) == lines[6]
    assert quiet_tensorflow.visible_lines("a Python traceback\n", 3) == "a Python traceback\n"


def test_levels_and_the_verbose_flag():
    assert quiet_tensorflow.min_log_level(None) == quiet_tensorflow.QUIET_LEVEL
    assert quiet_tensorflow.min_log_level(" ") == quiet_tensorflow.QUIET_LEVEL
    assert quiet_tensorflow.min_log_level("3") == 3
    assert quiet_tensorflow.min_log_level("loud") == 0
    assert quiet_tensorflow.verbose_requested(["--steps=3", "--verbose"])
    assert not quiet_tensorflow.verbose_requested(["--", "--verbose"])
    assert not quiet_tensorflow.verbose_requested(["--verbose_x"])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
