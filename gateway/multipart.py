"""Werkzeug's multipart decoder, less the two regular expressions it compiles for every request.

A request's boundary is random, so Python's cache of compiled expressions never holds them: the
compiling cost 0.27 ms of CPU an upload, a tenth of the gateway's at 32 clients. No parser fits
in its place (Flask reads forms through Werkzeug's only), so this subclass finds the boundary
with a plain bytes search and checks what surrounds it, matching exactly what Werkzeug's
expressions match (tests/unit/gateway/test_multipart.py compares the two on generated bodies).
The first place the boundary's text turns out not to be a boundary hands the search over to
Werkzeug's own expressions, compiled then: a body made to hold the text many times (a client
picks its boundary, "-" say) costs what it costs Werkzeug, not a Python loop a place.
"""

from __future__ import annotations

import re

from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder, State

# What may follow the boundary: `--SPACE* LINE_BREAK?` (the last) or `SPACE* LINE_BREAK`, SPACE
# being [^\S\n\r] of a bytes expression, the line breaks in the order Werkzeug's expressions try.
TAIL = re.compile(rb"--[ \t\x0b\x0c]*(?:\r\n|\n|\r)?|[ \t\x0b\x0c]*(?:\r\n|\n|\r)")


class _Match:
    """What Werkzeug reads of a match: start(), end() and group(1)."""

    __slots__ = ("_start", "_end", "_tail")

    def __init__(self, start: int, end: int, tail: bytes) -> None:
        self._start, self._end, self._tail = start, end, tail

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end

    def group(self, index: int) -> bytes:
        if index != 1:
            raise IndexError(index)
        return self._tail


class _BoundarySearch:
    """search(data, pos) as Werkzeug's `LINE_BREAK? --boundary TAIL` would answer it, the first
    line break optional only before the preamble's boundary."""

    __slots__ = ("_marker", "_break_optional", "_regex")

    def __init__(self, boundary: bytes, break_optional: bool) -> None:
        self._marker = b"--" + boundary
        self._break_optional = break_optional
        self._regex: re.Pattern | None = None

    def search(self, data: bytes | bytearray, pos: int = 0):
        if self._regex is not None:
            return self._regex.search(data, pos)
        at = data.find(self._marker, pos)
        if at == -1:
            return None
        tail = TAIL.match(data, at + len(self._marker))
        start = self._start(data, at, pos)
        if tail is not None and start is not None:
            return _Match(start, tail.end(), bytes(data[tail.start() : tail.end()]))
        # The boundary's text where it is no boundary, or not yet whole: Werkzeug's way from here.
        werkzeugs = MultipartDecoder(self._marker[2:])  # the boundary
        self._regex = werkzeugs.preamble_re if self._break_optional else werkzeugs.boundary_re
        return self._regex.search(data, pos)

    def _start(self, data: bytes | bytearray, at: int, pos: int) -> int | None:
        """The leftmost start at or after pos from which a line break (if any) reaches `at`."""
        if at - 2 >= pos and data[at - 2 : at] == b"\r\n":
            return at - 2
        if at - 1 >= pos and data[at - 1 : at] in (b"\n", b"\r"):
            return at - 1
        return at if self._break_optional else None


class BoundaryDecoder(MultipartDecoder):
    """MultipartDecoder with the boundary searches above; the rest is Werkzeug's."""

    def __init__(
        self, boundary: bytes, max_form_memory_size: int | None = None, *, max_parts: int | None = None
    ) -> None:
        # Werkzeug's own __init__ would compile the expressions: its state is set here instead
        # (the test checks these are all the attributes Werkzeug's sets).
        self.buffer = bytearray()
        self.complete = False
        self.max_form_memory_size = max_form_memory_size
        self.max_parts = max_parts
        self.state = State.PREAMBLE
        self.boundary = boundary
        self.preamble_re = _BoundarySearch(boundary, break_optional=True)
        self.boundary_re = _BoundarySearch(boundary, break_optional=False)
        self._search_position = 0
        self._parts_decoded = 0


def install() -> None:
    """Werkzeug's form parser makes its decoder by this module-level name: the only way in."""
    formparser.MultipartDecoder = BoundaryDecoder
