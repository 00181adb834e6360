"""README.md's flag table says what `tensorflow_model_server --help` says.

A user reads the README, not the source: every flag the server takes must be
in the table with the default it really has, the flags of ours marked
"not upstream" exactly where `--help` says so, and the flags accepted only
at their defaults (or ignored) named below the table.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from tensorflow_serving.model_servers import main
from tensorflow_serving.test_util import testing

# Defaults that depend on the machine, as the table writes them.
_PER_MACHINE = {
    "grpc_max_threads": "4 x cores",
    "rest_api_num_threads": "4 x cores",
    "num_tflite_pools": "cores",
}


def _readme() -> str:
    with open(os.path.join(testing.REPO_ROOT, "README.md")) as readme:
        return readme.read()


def _flag_rows() -> dict[str, tuple[str, str]]:
    """flag name -> (default cell, description cell) of the README's flag table."""
    text = _readme()
    section = text[text.index("### Flags") : text.index("Accepted only at their defaults")]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `--(\w+)` \|\s*([^|]*?)\s*\| (.*) \|$", line)
        if match:
            rows[match[1]] = (match[2], match[3])
    return rows


def _options() -> dict[str, tuple[object, str]]:
    """flag name -> (default, help text) as the server's parser has them."""
    return {
        action.dest: (action.default, action.help or "")
        for action in main.build_parser()._actions
        if action.option_strings and action.dest != "help"
    }


def _cell(name: str, value: object) -> str:
    """A default as the README writes it."""
    if name in _PER_MACHINE:
        return _PER_MACHINE[name]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`" if value != "" else '`""`'


def _served() -> dict[str, tuple[object, str]]:
    """The flags that do something: not `--version`, nor those accepted at defaults only."""
    return {
        name: option
        for name, option in _options().items()
        if name != "version"
        and not option[1].startswith(("Not supported here", "Accepted for compatibility"))
    }


def test_every_flag_is_in_the_table_and_no_other():
    rows = _flag_rows()
    assert set(rows) == {*_served(), "version"}, (
        f"missing from README: {sorted(set(_served()) - set(rows))}; "
        f"not a flag: {sorted(set(rows) - set(_served()) - {'version'})}"
    )


@pytest.mark.parametrize("name", sorted(_served()))
def test_the_table_gives_the_real_default(name):
    default, _ = _served()[name]
    assert _flag_rows()[name][0] == _cell(name, default)


def test_ours_are_marked_not_upstream_exactly_where_help_says_so():
    marked = {name for name, (_, text) in _flag_rows().items() if "**not upstream**" in text}
    ours = {name for name, (_, text) in _served().items() if "not upstream" in text.lower()}
    assert marked == ours


def test_flags_accepted_at_their_defaults_only_are_named_below_the_table():
    text = _readme()
    below = text[text.index("Accepted only at their defaults") : text.index("### APIs")]
    named = set(re.findall(r"`--(\w+)`", below))
    limited = {
        name
        for name, (_, text) in _options().items()
        if text.startswith(("Not supported here", "Accepted for compatibility"))
    }
    assert named == limited


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
