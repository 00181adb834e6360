"""Every Dockerfile under docker/, read with Docker's own parser (the PyPI
package `dockerfile`, Go's buildkit parser), checked for what a user of the
image depends on: the base image, the ports, the flags the server starts
with, and that every repo file, script and Bazel target the build names is
really there. No Docker engine runs here; docker/entrypoint_test.py runs the
entrypoint itself.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest

from tensorflow_serving.test_util import docker_test_util as util
from tensorflow_serving.test_util import testing

REPO = util.REPO_ROOT
DOCKER = util.DOCKER_DIR

# Debian release -> its python3. The devel image must run the Python the
# project is developed and tested with.
DEBIAN_PYTHON = {"bullseye": (3, 9), "bookworm": (3, 11), "trixie": (3, 13)}

SERVING_IMAGES = ("Dockerfile", "Dockerfile.stock")
ENTRYPOINT_IN_IMAGE = "/usr/bin/tf_serving_entrypoint.sh"

_REPO_PATH = re.compile(r"(?<![\w/.-])(?:tools|docker|tensorflow_serving|third_party)/[\w./-]*\w")
_BAZEL_LABEL = re.compile(r"(?<![\w@:])//([\w/.-]*)(?::([\w/.+-]+))?")
_BAZEL_BIN = re.compile(r"bazel-bin/([\w/.-]+)")


@dataclasses.dataclass
class Stage:
    base: str
    name: str | None
    commands: list

    def all(self, cmd: str) -> list:
        return [c for c in self.commands if c.cmd == cmd]

    def one(self, cmd: str):
        found = self.all(cmd)
        assert found, f"no {cmd} in stage FROM {self.base}"
        return found[-1]  # Docker uses the last one

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        }
        for command in self.all("ENV"):
            values = command.value
            for key, value in zip(values[::2], values[1::2], strict=True):
                env[key] = _expand(value, env)
        return env

    def exposed_ports(self) -> set[int]:
        env = self.env()
        return {int(_expand(p, env).split("/")[0]) for c in self.all("EXPOSE") for p in c.value}

    def copies(self) -> list[tuple[list[str], str, dict[str, str]]]:
        """(sources, destination, flags) of each COPY/ADD."""
        result = []
        for command in self.all("COPY") + self.all("ADD"):
            flags = dict(f.lstrip("-").partition("=")[::2] for f in command.flags)
            *sources, dest = command.value
            result.append((sources, dest, flags))
        return result

    def copied_from_context(self, dest_in_image: str) -> Path | None:
        """The repo file COPY put at `dest_in_image` in this stage, if any."""
        for sources, dest, flags in self.copies():
            if "from" not in flags and len(sources) == 1 and dest == dest_in_image:
                return REPO / sources[0]
        return None

    def shell_text(self) -> str:
        """RUN, CMD, ENTRYPOINT and HEALTHCHECK commands, one per line."""
        kinds = ("RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK")
        return "\n".join(" ".join(c.value) for c in self.commands if c.cmd in kinds)


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), text)


def stages(name: str) -> list[Stage]:
    commands = dockerfile.parse_file(str(DOCKER / name))
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for command in commands:
        if command.cmd == "FROM":
            base = _expand(command.value[0], global_args)
            alias = command.value[2] if len(command.value) == 3 else None
            result.append(Stage(base=base, name=alias, commands=[]))
        elif not result:
            if command.cmd == "ARG":
                key, _, default = command.value[0].partition("=")
                global_args[key] = default
        else:
            result[-1].commands.append(command)
    assert result, f"{name}: no FROM"
    return result


def dockerfiles() -> list[str]:
    return sorted(
        p.name for p in DOCKER.glob("Dockerfile*") if not p.name.endswith(".dockerignore")
    )


REQUIREMENT_FILES = ("requirements.txt", "requirements-no-deps.txt", "requirements-dev.txt")


def _requirement(package: str) -> str:
    for name in REQUIREMENT_FILES:
        for line in (REPO / name).read_text().splitlines():
            dist, sep, version = line.split("#")[0].strip().partition("==")
            if sep and dist.strip().lower() == package:
                return version.strip()
    raise AssertionError(f"{package} is not pinned in {', '.join(REQUIREMENT_FILES)}")


def _bazel_target_exists(package: str, name: str | None) -> bool:
    build = REPO / package / "BUILD"
    if not build.is_file():
        return False
    name = name or package.rsplit("/", 1)[-1]
    return name == "..." or re.search(rf'name\s*=\s*"{re.escape(name)}"', build.read_text())


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins, `!` re-includes."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def _ignore_patterns(name: str) -> list[str]:
    path = DOCKER / f"{name}.dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# --- every Dockerfile --------------------------------------------------------


def test_the_three_images_are_there():
    assert {"Dockerfile", "Dockerfile.devel", "Dockerfile.stock"} <= set(dockerfiles())


@pytest.mark.parametrize("name", dockerfiles())
def test_repo_files_copied_into_the_image_exist_and_are_not_ignored(name):
    patterns = _ignore_patterns(name)
    for stage in stages(name):
        for sources, _, flags in stage.copies():
            if "from" in flags:
                continue
            for source in sources:
                if source == ".":
                    continue
                assert (REPO / source).exists(), f"{name}: COPY {source}: not in the repo"
                assert not _ignored(source, patterns), (
                    f"{name}: COPY {source}, but {name}.dockerignore leaves it out"
                )


@pytest.mark.parametrize("name", dockerfiles())
def test_scripts_and_bazel_targets_the_commands_name_exist(name):
    for stage in stages(name):
        text = stage.shell_text()
        for path in _REPO_PATH.findall(text):
            assert (REPO / path).exists(), f"{name}: names {path}, not in the repo"
        for target in _BAZEL_BIN.findall(text):
            package, _, binary = target.rpartition("/")
            binary = binary.removesuffix(".runfiles")
            assert _bazel_target_exists(package, binary), f"{name}: no target //{package}:{binary}"
        for package, target in _BAZEL_LABEL.findall(text):
            package = package.removesuffix("/...")
            if package in ("", "..."):
                continue
            assert _bazel_target_exists(package, target), f"{name}: no target //{package}:{target}"


@pytest.mark.parametrize("name", dockerfiles())
def test_absolute_scripts_the_image_runs_were_copied_in(name):
    final = stages(name)[-1]
    for cmd in ("ENTRYPOINT", "CMD", "HEALTHCHECK"):
        for command in final.all(cmd):
            for word in command.value:
                if word.startswith("/usr/bin/tf_serving"):
                    source = final.copied_from_context(word)
                    assert source is not None and source.is_file(), (
                        f"{name}: {cmd} runs {word}, which no COPY of a repo file puts there"
                    )


def _copy_whole_context() -> list[str]:
    return [
        name
        for name in dockerfiles()
        if any("." in sources for s in stages(name) for sources, _, _ in s.copies())
    ]


def test_devel_and_runtime_copy_the_whole_repo():
    assert {"Dockerfile", "Dockerfile.devel"} <= set(_copy_whole_context())


@pytest.mark.parametrize("name", _copy_whole_context())
def test_build_context_keeps_host_venv_and_bazel_output_out(name):
    patterns = _ignore_patterns(name)
    for host_only in (".venv", "bazel-bin", "bazel-out", ".git", "docker/__pycache__"):
        assert _ignored(host_only, patterns), f"{name}.dockerignore lets {host_only} in"
    for needed in ("tools/setup.sh", *REQUIREMENT_FILES, "WORKSPACE", ".bazelrc", "docker"):
        assert not _ignored(needed, patterns), f"{name}.dockerignore leaves {needed} out"


# Debian packages a stage may install itself: what tools/setup.sh needs to run.
SETUP_PREREQUISITES = {"ca-certificates", "python3", "python3-venv"}


@pytest.mark.parametrize("name", dockerfiles())
def test_packages_come_from_the_setup_script_only(name):
    """So that an image cannot drift from what developers and CI install."""
    for stage in stages(name):
        for command in stage.all("RUN"):
            text = " ".join(command.value)
            assert "pip install" not in text and "npm " not in text, f"{name}: {text}"
            for install in re.findall(r"apt-get install ([^&;|]*)", text):
                packages = {w for w in install.split() if not w.startswith("-")}
                assert packages <= SETUP_PREREQUISITES, f"{name}: installs {packages}"


def test_documented_build_commands_name_real_dockerfiles():
    texts = [(DOCKER / "README.md").read_text()] + [(DOCKER / n).read_text() for n in dockerfiles()]
    builds = re.findall(r"docker build -f docker/(\S+) -t (\S+) \.", "\n".join(texts))
    assert {f for f, _ in builds} == set(dockerfiles())
    tags = {f: t for f, t in builds}
    assert len(set(builds)) == len(tags), f"one Dockerfile, several tags: {sorted(set(builds))}"
    # The Kubernetes Deployment runs the runtime image.
    assert f"image: {tags['Dockerfile']}:" in (DOCKER / "k8s" / "deployment.yaml").read_text()


def _bazel_commands(name: str) -> list[str]:
    """Every `bazel ...` command line the image's RUN steps run."""
    runs = [" ".join(c.value) for s in stages(name) for c in s.all("RUN")]
    return [m.group(0) for run in runs for m in re.finditer(r"(?<![\w/.-])bazel\s[^&;|]*", run)]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.devel"])
def test_build_steps_leave_no_bazel_server(name):
    """A Bazel server left by a RUN step outlives its client: `bash -c` execs the last
    command, which becomes PID 1 and never reaps the server once `bazel shutdown`
    stops it, and Bazel 4 takes the zombie for a live server (exit 36)."""
    commands = _bazel_commands(name)
    assert commands, f"{name} runs no bazel"
    for command in commands:
        assert command.split()[1] == "--batch", f"{name}: {command}"


def _setup_runs(stage: Stage) -> list[str]:
    return [" ".join(c.value) for c in stage.all("RUN") if "tools/setup.sh" in " ".join(c.value)]


def test_serving_image_installs_the_runtime_requirements_only():
    build, final = stages("Dockerfile")
    runs = _setup_runs(build)
    assert runs and all(". tools/setup.sh --runtime" in run for run in runs), runs
    copied = {source for sources, _, _ in build.copies() for source in sources}
    assert "requirements-dev.txt" not in copied
    assert {"requirements.txt", "requirements-no-deps.txt"} <= copied


def test_devel_shares_the_runtime_install_layers_with_the_serving_build():
    """Same steps up to `setup.sh --runtime`: an engine builds them once for both images."""

    def up_to_runtime_install(stage: Stage) -> list[tuple]:
        steps = []
        for command in stage.commands:
            steps.append((command.cmd, command.value, command.flags))
            if command.cmd == "RUN" and ". tools/setup.sh --runtime" in " ".join(command.value):
                return steps
        raise AssertionError(f"stage FROM {stage.base} never runs setup.sh --runtime")

    (devel,) = stages("Dockerfile.devel")
    build = stages("Dockerfile")[0]
    assert devel.base == build.base
    assert up_to_runtime_install(devel) == up_to_runtime_install(build)
    assert any(re.search(r"\. tools/setup\.sh(?! --runtime)", run) for run in _setup_runs(devel))


# --- Dockerfile.devel ---------------------------------------------------------


def test_devel_base_is_debian_with_the_projects_python():
    (stage,) = stages("Dockerfile.devel")
    image, _, release = stage.base.partition(":")
    assert image == "debian"
    assert DEBIAN_PYTHON.get(release) == sys.version_info[:2], (
        f"{stage.base} has Python {DEBIAN_PYTHON.get(release)}, the project runs {sys.version}"
    )


def test_devel_installs_with_the_setup_script_builds_everything_and_runs_the_tests():
    (stage,) = stages("Dockerfile.devel")
    runs = [" ".join(c.value) for c in stage.all("RUN")]
    assert any(". tools/setup.sh" in run and "bazel --batch build //..." in run for run in runs)
    assert stage.one("CMD").value == ("bash", "tools/run_tests.sh")


def test_devel_path_is_the_venv_that_setup_sh_makes():
    (stage,) = stages("Dockerfile.devel")
    repo_in_image = stage.one("WORKDIR").value[0]
    assert stage.env()["PATH"].split(":")[0] == f"{repo_in_image}/.venv/bin"
    assert '_venv="${_repo}/.venv"' in (REPO / "tools/setup.sh").read_text()


# --- Dockerfile (runtime) -----------------------------------------------------


def test_runtime_builds_our_server_with_the_devel_recipe_and_ships_it_small():
    build, final = stages("Dockerfile")
    assert build.base == stages("Dockerfile.devel")[0].base
    build_runs = " ".join(" ".join(c.value) for c in build.all("RUN"))
    assert ". tools/setup.sh" in build_runs
    server = "//tensorflow_serving/model_servers:tensorflow_model_server"
    assert f"bazel --batch build {server}" in build_runs
    assert final.base == f"{build.base}-slim"
    final_text = final.shell_text()
    assert "bazel" not in final_text and "setup.sh" not in final_text
    assert all(sources != ["."] for sources, _, _ in final.copies())
    # The server binary's folder is on PATH, so the entrypoint finds it.
    assert "/opt/tensorflow_serving/bin" in final.env()["PATH"].split(":")


def test_runtime_serves_slash_models_on_8000_and_8501():
    final = stages("Dockerfile")[-1]
    env = final.env()
    assert env["MODEL_BASE_PATH"] == "/models"
    assert final.exposed_ports() == {8000, 8501}
    assert final.one("ENTRYPOINT").value == (ENTRYPOINT_IN_IMAGE,)


def test_runtime_healthcheck_runs_the_repo_healthcheck_script():
    final = stages("Dockerfile")[-1]
    check = final.one("HEALTHCHECK")
    assert check.value[0] == "CMD"
    script = next(word for word in check.value if word.endswith(".py"))
    assert final.copied_from_context(script) == util.HEALTHCHECK
    assert any(flag.startswith("--start-period=") for flag in check.flags)


# --- Dockerfile.stock -----------------------------------------------------------


def test_stock_is_the_release_matching_our_pinned_serving_api():
    (stage,) = stages("Dockerfile.stock")
    assert stage.base == f"tensorflow/serving:{_requirement('tensorflow-serving-api')}"
    assert stage.exposed_ports() == {8000, 8501}
    assert stage.env()["MODEL_NAME"] == "mnist"
    assert stage.one("ENTRYPOINT").value == (ENTRYPOINT_IN_IMAGE,)


# --- what the serving images start ----------------------------------------------


@pytest.mark.parametrize("name", SERVING_IMAGES)
def test_serving_image_starts_the_server_on_its_exposed_ports(name, tmp_path):
    """Runs the image's ENTRYPOINT with the image's ENV and a stand-in server."""
    final = stages(name)[-1]
    (entrypoint,) = final.one("ENTRYPOINT").value
    script = final.copied_from_context(entrypoint)
    assert script == util.ENTRYPOINT
    fake = tmp_path / "tensorflow_model_server"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    env = final.env()
    env["PATH"] = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    flags = dict(line.removeprefix("--").split("=", 1) for line in result.stdout.splitlines())
    assert {int(flags["port"]), int(flags["rest_api_port"])} == final.exposed_ports()
    assert int(flags["port"]) == 8000  # the chapter's mnist_client --server=localhost:8000
    assert flags["model_name"] == env["MODEL_NAME"]
    assert flags["model_base_path"] == f"{env['MODEL_BASE_PATH']}/{env['MODEL_NAME']}"


def test_entrypoint_passes_only_flags_the_stock_binary_knows():
    """The stock C++ server runs the same script: no flag of ours alone in it."""
    from tensorflow_serving.model_servers import main

    text = util.ENTRYPOINT.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"--(\w+)=", code))
    assert used == {"port", "rest_api_port", "model_name", "model_base_path"}
    known = {a.dest for a in main.build_parser()._actions}
    assert used <= known
    assert "bind_address" not in used  # ours only; the stock binary would refuse it
    # Both images put their own server on PATH under the stock binary's name.
    assert re.search(r"^exec tensorflow_model_server ", code, re.MULTILINE)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
