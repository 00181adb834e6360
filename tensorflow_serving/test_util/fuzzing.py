"""Bounded coverage-guided fuzzing (atheris / libFuzzer) inside a py_test.

libFuzzer ends the process when it stops, so a fuzz test runs its own file
again as a child: `python <test file> --atheris <libFuzzer flags> <corpus>`.
The child instruments `tensorflow_serving.util` for coverage, then feeds
`one_input(data)` until FUZZ_SECONDS (default 25) have passed. Any
exception escaping `one_input` is a finding: libFuzzer prints it, saves the
input under the test's temp dir, and the child exits non-zero, which fails
the test with the traceback and the input's bytes.

    if __name__ == "__main__":
        if fuzzing.is_child():
            fuzzing.fuzz(one_input, ("tensorflow_serving.util.json_body",))
        sys.exit(testing.main(__file__))
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys

CHILD_FLAG = "--atheris"
DEFAULT_SECONDS = 25
# What the fuzzed code may be instrumented in (imported only after the hook is set).
INSTRUMENTED = ("tensorflow_serving.util",)
# Dictionary tokens for fuzzing REST bodies: what upstream's JSON reading treats
# specially (NaN and infinities, b64 objects, numbers at the edge of a type,
# surrogates, nesting).
JSON_TOKENS = [
    b'"signature_name"',
    b'{"b64": "',
    b"NaN",
    b"-Infinity",
    b"1e400",
    b"16777217",
    b"9223372036854775808",
    b"18446744073709551616",
    b"\\ud800",
    b"\\ud83d\\ude00",
    b"true",
    b"null",
    b"[[[[",
]
_PLANTED_BUG = "FUZZ_PLANTED_BUG"


def seconds() -> int:
    """FUZZ_SECONDS from the environment (bazel test --test_env=FUZZ_SECONDS=600)."""
    return int(os.environ.get("FUZZ_SECONDS", DEFAULT_SECONDS))


def is_child() -> bool:
    return len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG


def fuzz(
    one_input,
    modules: tuple[str, ...],
    setup=None,
    preload: tuple[str, ...] = ("numpy", "orjson", "tensorflow"),
) -> None:
    """In the child: import `modules` instrumented, run `setup`, fuzz until libFuzzer exits."""
    import importlib

    import atheris

    # Heavy dependencies first, uninstrumented: coverage of our code is what guides.
    for name in preload:
        importlib.import_module(name)
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        for name in modules:
            importlib.import_module(name)
    if setup is not None:
        setup()
    marker = os.environ.get(_PLANTED_BUG, "").encode("latin-1")
    if marker:
        one_input = _with_planted_bug(one_input, marker)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


@dataclasses.dataclass
class Result:
    returncode: int
    output: str
    crashes: list[pathlib.Path]

    @property
    def runs(self) -> int:
        """Inputs tried, from libFuzzer's final "Done N runs" line."""
        for line in reversed(self.output.splitlines()):
            if line.startswith("Done ") and " runs " in line:
                return int(line.split()[1])
        return 0

    def report(self) -> str:
        found = "".join(f"\n{path.name}: {path.read_bytes()[:2000]!r}" for path in self.crashes)
        return f"exit code {self.returncode}{found}\n{self.output[-6000:]}"


def _with_planted_bug(one_input, marker: bytes):
    def planted(data: bytes) -> None:
        if marker in data:
            raise RuntimeError(f"planted bug: input holds {marker!r}")
        one_input(data)

    return planted


def run(
    test_file: str,
    work_dir: pathlib.Path,
    seeds: list[bytes],
    dictionary: list[bytes] = (),
    max_len: int = 4096,
    planted_bug: bytes = b"",
) -> Result:
    """Fuzzes `test_file`'s target in a child process for `seconds()` seconds.

    `planted_bug`: the target raises on inputs holding these bytes (to show
    that a finding fails the run).
    """
    corpus = work_dir / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(seeds):
        (corpus / f"seed{index}").write_bytes(seed)
    args = [
        f"-max_total_time={seconds()}",
        f"-max_len={max_len}",
        "-timeout=20",  # seconds one input may take: a slow input is a finding too
        "-rss_limit_mb=6144",
        f"-artifact_prefix={work_dir}/",
        "-print_final_stats=1",
    ]
    if dictionary:
        tokens = work_dir / "tokens.dict"
        tokens.write_text("".join(f'"{_dict_escape(token)}"\n' for token in dictionary))
        args.append(f"-dict={tokens}")
    # The child sees the modules this process sees (pytest's rootdir, Bazel's runfiles).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in sys.path))
    if planted_bug:
        env[_PLANTED_BUG] = planted_bug.decode("latin-1")
    completed = subprocess.run(
        [sys.executable, test_file, CHILD_FLAG, *args, str(corpus)],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=seconds() + 300,
    )
    crashes = sorted(
        p for p in work_dir.iterdir() if p.name.split("-")[0] in ("crash", "timeout", "oom")
    )
    return Result(completed.returncode, completed.stdout + completed.stderr, crashes)


def assert_finds_nothing(
    test_file: str,
    work_dir: pathlib.Path,
    seeds: list[bytes],
    dictionary: list[bytes] = (),
    record_property=None,
) -> None:
    """Fuzzes `test_file`'s target (see run) and fails the calling test on any finding.

    Also fails it if fewer than 100 inputs ran: a fuzzer that barely ran
    proves nothing. `record_property` (pytest's fixture) puts the count of
    inputs into Bazel's test.xml.
    """
    result = run(test_file, work_dir, seeds, dictionary)
    print(f"{pathlib.Path(test_file).stem}: {result.runs} inputs in {seconds()} s")
    if record_property is not None:
        record_property("fuzz_inputs", result.runs)
    assert result.returncode == 0 and not result.crashes, result.report()
    assert result.runs > 100, result.report()


def _dict_escape(token: bytes) -> str:
    """libFuzzer's dictionary syntax: printable ASCII, with \\\\, \\" and \\xNN escapes."""
    out = []
    for byte in token:
        char = chr(byte)
        if char in '\\"' or not 32 <= byte < 127:
            out.append(f"\\x{byte:02X}")
        else:
            out.append(char)
    return "".join(out)
