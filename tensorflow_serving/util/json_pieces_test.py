"""json_pieces makes the value a parser makes of the whole document, piece by piece.

Pieces and scan blocks are a few bytes here, so that small documents are cut
everywhere: inside strings, escapes and runs of backslashes, across blocks.
"""

import json
import sys

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_body, json_pieces


@pytest.fixture(autouse=True)
def tiny_pieces(monkeypatch):
    monkeypatch.setattr(json_pieces, "PIECE_BYTES", 8)
    monkeypatch.setattr(json_pieces, "BLOCK_BYTES", 5)


def loads(body: bytes):
    return json_pieces.loads(body, json_body._loads_piece)  # the parser json_body uses


_TEXT = st.text(alphabet=st.sampled_from(list('ab"\\,:[]{} é\n')), max_size=6)
_LEAF = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
    st.booleans(),
    st.none(),
)
_DOCUMENT = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(_TEXT, inner, max_size=5)),
    max_leaves=40,
)


@settings(max_examples=1000, suppress_health_check=list(HealthCheck), deadline=None)
@given(_DOCUMENT, st.sampled_from([None, 1]), st.booleans())
def test_a_document_parsed_in_pieces_is_the_document(document, indent, ascii_only):
    body = json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode()
    assert loads(body) == orjson.loads(body)


def test_repeated_keys_keep_the_last_value_as_the_parser_does():
    body = b'{"key": [1, 2, 3, 4], "other": 0, "key": "last one"}'
    assert loads(body) == orjson.loads(body) == {"key": "last one", "other": 0}


@pytest.mark.parametrize(
    "body, words",
    [
        (b"[1, 2, 3, 4, 5, 6]]", "a closing bracket has no opening one"),
        (b"[[1, 2, 3, 4, 5, 6]", "a bracket is not closed"),
        (b'["abc, def, ghi]', "a string is not terminated"),
        (b"[1, 2, 3, 4, , 5, 6]", "JSON Parse error"),
        (b'{"abcdefgh": [1, 2, 3, 4, 5, 6], 1: 2}', "JSON Parse error"),
        (b"[1, 2, 3, 4, 5, 6] [7]", "a closing bracket has no opening one"),
        (b"[1, 2, 3, 4, 5, 6] 7", "does not end where its first value does"),
        (b'{"abcdefghijk" [1, 2, 3]}', "an object's member has no colon"),
    ],
)
def test_malformed_documents_are_parse_errors(body, words):
    error = testing.serving_error(loads, body)
    assert error.code.name == "INVALID_ARGUMENT"
    assert error.message.startswith("JSON Parse error: ")
    assert words in error.message


def test_a_parse_error_names_its_offset_in_the_whole_body():
    body = b"[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, x, 12]"
    assert "at offset: 36" in testing.serving_error(loads, body).message


def test_large_values_nested_too_deep_are_refused():
    body = b"[" * 10 + b"1, 2, 3, 4, 5" + b"]" * 10
    error = testing.serving_error(loads, body)
    assert f"more than {json_pieces.MAX_NESTING} levels deep" in error.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
