"""The split of the pinned packages that the serving image relies on.

docker/Dockerfile installs requirements.txt and requirements-no-deps.txt only
(`tools/setup.sh --runtime`); developers and CI add requirements-dev.txt. So
the server, and the chapter's scripts, must import nothing that only
requirements-dev.txt brings, including imports inside functions that a test
run may never reach. docker/image_test.py runs the image itself.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

from tensorflow_serving.test_util import docker_test_util as util
from tensorflow_serving.test_util import testing

REPO = util.REPO_ROOT
RUNTIME = REPO / "requirements.txt"
NO_DEPS = REPO / "requirements-no-deps.txt"
DEV = REPO / "requirements-dev.txt"

# The programs the serving image and the chapter run.
ENTRY_MODULES = (
    "tensorflow_serving.model_servers.main",
    "tensorflow_serving.example.serving_model_ch4",
    "tensorflow_serving.example.mnist_client",
)


def _lines(path: Path) -> list[str]:
    stripped = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in stripped if line]


def _pins(path: Path) -> dict[str, str]:
    """{normalized distribution name: version} of the `name==version` lines."""
    pins = {}
    for line in _lines(path):
        if line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: {line!r} is not pinned with =="
        pins[_normalize(name)] = version
    return pins


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_file(module: str) -> Path | None:
    """Our source file of `module` (a tensorflow_serving.* module), if it is ours."""
    path = REPO.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything `path` imports, at any depth of its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def third_party_imports(entry_modules: tuple[str, ...]) -> dict[str, str]:
    """{top-level module: our module importing it} over everything the entries reach."""
    seen: set[str] = set()
    pending = list(entry_modules)
    found: dict[str, str] = {}
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue
        for name in _imports(path, module):
            top = name.split(".")[0]
            if top == "tensorflow_serving":
                if _module_file(name) is not None:
                    pending.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, module)
    return found


def _dev_only_modules() -> dict[str, str]:
    """{top-level module: distribution} of the distributions requirements-dev.txt adds."""
    dev_only = set(_pins(DEV)) - set(_pins(RUNTIME))
    return {
        module: dist
        for module, dists in importlib.metadata.packages_distributions().items()
        for dist in dists
        if _normalize(dist) in dev_only
    }


def test_the_entry_modules_are_ours():
    for module in ENTRY_MODULES:
        assert _module_file(module) is not None, module


def test_server_and_chapter_import_no_development_package():
    dev_only = _dev_only_modules()
    assert {"pytest", "hypothesis", "atheris", "yaml", "dockerfile"} <= set(dev_only)
    imported = third_party_imports(ENTRY_MODULES)
    assert {"tensorflow", "grpc", "numpy"} <= set(imported)
    offending = {m: f"{dev_only[m]}, imported by {importer}" for m, importer in imported.items()
                 if m in dev_only}  # fmt: skip
    assert not offending, f"run-time code imports development packages: {offending}"


def test_dev_adds_to_runtime_and_pins_nothing_twice():
    assert "-r requirements.txt" in _lines(DEV)
    runtime, no_deps, dev = _pins(RUNTIME), _pins(NO_DEPS), _pins(DEV)
    assert not set(runtime) & set(dev), "pinned in both requirements.txt and -dev"
    assert not set(no_deps) & (set(runtime) | set(dev))


def test_serving_api_is_installed_without_tensorflow():
    """Its requirements but `tensorflow` are pinned; tensorflow-cpu provides the module."""
    runtime = _pins(RUNTIME)
    assert "tensorflow" not in runtime and "tensorflow" not in _pins(DEV)
    assert runtime["tensorflow-cpu"] == _pins(NO_DEPS)["tensorflow-serving-api"]
    requires = importlib.metadata.requires("tensorflow-serving-api") or []
    for requirement in map(Requirement, requires):
        name = _normalize(requirement.name)
        if name == "tensorflow":
            continue
        assert name in runtime, f"tensorflow-serving-api needs {requirement}: pin it"
        assert requirement.specifier.contains(runtime[name]), f"{requirement} vs {runtime[name]}"


def test_the_installed_packages_are_the_pinned_ones():
    pinned = {**_pins(RUNTIME), **_pins(NO_DEPS), **_pins(DEV)}
    for name, version in pinned.items():
        assert importlib.metadata.version(name) == version, name
    try:
        importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        raise AssertionError("the `tensorflow` distribution is installed beside tensorflow-cpu")


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
