"""A large JSON document parsed in pieces, so that no parser call holds the interpreter long.

A JSON parser (orjson, or the stdlib's) parses a whole document in one C call
that keeps every other thread waiting: about a second per 100 MB. `loads`
makes the same value out of calls on pieces of at most about PIECE_BYTES:

1. A container larger than a piece is scanned for its top-level commas
   (numpy, BLOCK_BYTES at a time: quotes, escapes, strings, brackets and
   depth), keeping only the commas that cut it into groups of elements of at
   most PIECE_BYTES; a group larger than that is one element.
2. Each group is parsed as a list (`[` group `]`) or an object (`{` group
   `}`) by `parse_piece`, and the results are joined: lists extended,
   objects updated (a repeated key keeps its last value, as the parsers do).
3. A single element larger than a piece is parsed the same way, recursively
   (at most MAX_NESTING containers deep); a scalar, such as one huge string,
   is parsed whole.

`parse_piece(piece, offset)` parses one piece and words its errors with
offsets into the whole body (`offset` is where the piece's first byte would
be, the bracket added around a group included). Malformed structure the scan
sees (a closing bracket too many or too few, an unterminated string) is a
parse error too; anything else malformed fails in the piece that holds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tensorflow_serving.util import status

PIECE_BYTES = 1 << 20
BLOCK_BYTES = 1 << 20
# Containers larger than a piece, each inside the previous, that are split in turn.
MAX_NESTING = 8

ParsePiece = Callable[[bytes, int], Any]

_QUOTE, _BACKSLASH, _COMMA, _COLON = (ord(c) for c in '"\\,:')
_OPENERS = {ord("["): ord("]"), ord("{"): ord("}")}
_NON_SPACE = re.compile(rb"[^ \t\n\r]")
_SPACE = b" \t\n\r"


def loads(body: bytes, parse_piece: ParsePiece) -> Any:
    """The JSON value of `body`, parsed in pieces (see the module's docstring)."""
    start, end = _stripped(body, 0, len(body))
    if start == end:
        return parse_piece(body, 0)  # empty or blank: the parser words the error
    return _value(body, start, end, parse_piece, 0)


def _value(body: bytes, start: int, end: int, parse_piece: ParsePiece, nesting: int) -> Any:
    """The value spanning body[start:end] (no blanks around it)."""
    closer = _OPENERS.get(body[start])
    if end - start <= PIECE_BYTES or closer is None:
        return parse_piece(body[start:end], start)
    if body[end - 1] != closer:
        raise _parse_error("the document does not end where its first value does", end - 1)
    if nesting >= MAX_NESTING:
        raise status.invalid_argument(
            f"JSON body nests values larger than {PIECE_BYTES} bytes more than "
            f"{MAX_NESTING} levels deep"
        )
    groups = _groups(body, start + 1, end - 1)
    if closer == ord("]"):
        return _array(body, groups, parse_piece, nesting)
    return _object(body, groups, parse_piece, nesting)


def _array(body: bytes, groups: list[tuple[int, int]], parse_piece: ParsePiece, nesting: int):
    result: list = []
    for start, end in groups:
        if end - start <= PIECE_BYTES:
            result.extend(parse_piece(b"[" + body[start:end] + b"]", start - 1))
        else:  # one element
            first, last = _element(body, start, end, len(groups) == 1)
            if first < last:
                result.append(_value(body, first, last, parse_piece, nesting + 1))
    return result


def _object(body: bytes, groups: list[tuple[int, int]], parse_piece: ParsePiece, nesting: int):
    result: dict = {}
    for start, end in groups:
        if end - start <= PIECE_BYTES:
            result.update(parse_piece(b"{" + body[start:end] + b"}", start - 1))
            continue
        first, last = _element(body, start, end, len(groups) == 1)
        if first == last:
            continue
        colon = _Scan(body, first, last).first_colon()
        key = parse_piece(body[first:colon], first)
        if not isinstance(key, str):
            raise _parse_error("an object's key is not a string", first)
        value_start, value_end = _stripped(body, colon + 1, last)
        if value_start == value_end:
            raise _parse_error("an object's member has no value", colon)
        result[key] = _value(body, value_start, value_end, parse_piece, nesting + 1)
    return result


def _element(body: bytes, start: int, end: int, alone: bool) -> tuple[int, int]:
    """The span of the one element in body[start:end]; empty only for an empty container."""
    first, last = _stripped(body, start, end)
    if first == last and not alone:
        raise _parse_error("a container has an empty element", start)
    return first, last


def _groups(body: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """body[start:end] (a container's inside) cut at top-level commas into groups of
    elements of at most PIECE_BYTES each, or of a single larger element."""
    cuts = _Scan(body, start, end).cuts()
    bounds = [start - 1, *cuts, end]
    return [(bounds[i] + 1, bounds[i + 1]) for i in range(len(bounds) - 1)]


class _Scan:
    """JSON structure in body[start:end] (inside a container), read BLOCK_BYTES at a time.

    Tracks whether each byte is inside a string (quotes not escaped by an
    odd run of backslashes) and the bracket depth outside strings, relative
    to `start`; raises a parse error when the depth drops below zero or does
    not end at zero, or a string is left open.
    """

    def __init__(self, body: bytes, start: int, end: int):
        self._body = body
        self._start = start
        self._end = end
        self._in_string = 0
        self._backslashes = 0  # the run of backslashes that ended the previous block
        self._depth = 0

    def cuts(self) -> list[int]:
        """Positions of the top-level commas that end a group (see _groups)."""
        cuts: list[int] = []
        last = self._start - 1  # the latest cut
        previous = -1  # the latest top-level comma
        for offset, commas in self._top_level(_COMMA):
            if len(commas):
                last, previous = _cut_many(cuts, last, previous, offset + commas)
        self._check_closed()
        if self._end - last > PIECE_BYTES and previous > last:
            cuts.append(previous)  # the elements after it are one, or fit a piece
        return cuts

    def first_colon(self) -> int:
        """The first top-level colon (the one after an object member's key)."""
        for offset, colons in self._top_level(_COLON, stop_at_first=True):
            if len(colons):
                return offset + int(colons[0])
        raise _parse_error("an object's member has no colon", self._start)

    def _top_level(self, char: int, stop_at_first: bool = False):
        """(block offset, positions in the block of `char` at depth 0 outside strings)."""
        for offset in range(self._start, self._end, BLOCK_BYTES):
            size = min(BLOCK_BYTES, self._end - offset)
            block = np.frombuffer(self._body, np.uint8, size, offset)
            outside, depth = self._structure(block, offset)
            found = np.flatnonzero(block == char)
            found = found[(depth[found] == 0) & (outside if outside.ndim == 0 else outside[found])]
            yield offset, found
            if stop_at_first and len(found):
                return

    def _structure(self, block: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Whether each byte is outside any string (one value for a block without quotes),
        and the depth after it; carries both on to the next block."""
        quotes = block == _QUOTE
        if not self._in_string and not quotes.any():
            outside = np.bool_(True)  # a backslash here is outside strings: a parse error
            self._backslashes = 0
            opens = (block == ord("[")) | (block == ord("{"))
            closes = (block == ord("]")) | (block == ord("}"))
        else:
            if self._backslashes or (block == _BACKSLASH).any():
                quotes &= ~self._escaped(block == _BACKSLASH)
            parity = np.cumsum(quotes, dtype=np.int32) + self._in_string
            outside = (parity & 1) == 0
            self._in_string = int(parity[-1] & 1)
            opens = ((block == ord("[")) | (block == ord("{"))) & outside
            closes = ((block == ord("]")) | (block == ord("}"))) & outside
        delta = opens.view(np.int8) - closes.view(np.int8)
        depth = np.cumsum(delta, dtype=np.int32) + self._depth
        if depth.min() < 0:
            where = offset + int(np.argmin(depth))
            raise _parse_error("a closing bracket has no opening one", where)
        self._depth = int(depth[-1])
        return outside, depth

    def _escaped(self, backslashes: np.ndarray) -> np.ndarray:
        """Bytes preceded by an odd run of backslashes (the run may start in an earlier block)."""
        index = np.arange(len(backslashes))
        last_other = np.maximum.accumulate(np.where(backslashes, -1, index))
        before = np.empty(len(backslashes), dtype=np.int64)
        before[0] = self._backslashes
        run = index[:-1] - last_other[:-1]  # the run ending at i - 1, within this block
        before[1:] = np.where(last_other[:-1] < 0, index[1:] + self._backslashes, run)
        tail = len(backslashes) - 1 - last_other[-1]
        self._backslashes = int(tail + self._backslashes if last_other[-1] < 0 else tail)
        return (before & 1) == 1

    def _check_closed(self) -> None:
        if self._in_string:
            raise _parse_error("a string is not terminated", self._end)
        if self._depth:
            raise _parse_error("a bracket is not closed", self._end)


def _cut_before(cuts: list[int], last: int, previous: int, comma: int) -> tuple[int, int]:
    """Takes one more top-level comma; cuts so that groups stay within PIECE_BYTES.

    A comma past a piece from the last cut cuts at the comma before it (the
    group up to there fits), or, when there is none since the last cut, at
    itself (the group is one large element). Returns (last cut, latest comma).
    """
    while comma - last > PIECE_BYTES:
        if previous > last:
            cuts.append(previous)
            last = previous
        else:
            cuts.append(comma)
            last = comma
    return last, comma


def _cut_many(cuts: list[int], last: int, previous: int, commas: np.ndarray) -> tuple[int, int]:
    """_cut_before for a block's sorted commas, visiting only the commas near a cut."""
    index = 0
    while index < len(commas):
        crossing = int(np.searchsorted(commas, last + PIECE_BYTES, side="right"))
        if crossing >= len(commas):
            break
        if crossing > index:
            previous = int(commas[crossing - 1])
        last, previous = _cut_before(cuts, last, previous, int(commas[crossing]))
        index = crossing + 1
    return last, int(commas[-1]) if len(commas) else previous


def _stripped(body: bytes, start: int, end: int) -> tuple[int, int]:
    """body[start:end] without the blanks around it, as a span (empty: start == end)."""
    match = _NON_SPACE.search(body, start, end)
    if match is None:
        return end, end
    first = match.start()
    last = end
    while last > first and body[last - 1] in _SPACE:
        last -= 1
    return first, last


def _parse_error(what: str, offset: int) -> status.ServingError:
    return status.invalid_argument(f"JSON Parse error: {what} at offset: {offset}")


__all__ = ["BLOCK_BYTES", "MAX_NESTING", "PIECE_BYTES", "loads"]
