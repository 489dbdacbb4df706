"""gateway/multipart.py finds what Werkzeug's own boundary expressions find, and decodes bodies
event for event as Werkzeug's decoder does."""

import io
import re

import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder, NeedData

from gateway import create_app
from gateway.multipart import BoundaryDecoder

BOUNDARY = b"b-1'()+_,./:=?x"  # every character a boundary may have that an expression treats specially
# Dashes too: a client picks its boundary, "-" and "--" included, which overlap the markers.
BOUNDARIES = [BOUNDARY, b"-", b"--", b"a-a"]
# \x1c-\x1f, \x85 and \xa0 are whitespace to a str expression, not to a bytes one.
PIECES = [b"\r\n", b"\n", b"\r", b"--", b"-", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x85", b"\xa0", b"x"]


def reference(boundary: bytes):
    return MultipartDecoder(boundary)


@settings(max_examples=4000, deadline=None)
@given(
    st.sampled_from(BOUNDARIES), st.lists(st.integers(0, len(PIECES) + 1), max_size=14), st.integers(0, 12)
)
def test_the_searches_match_werkzeugs_expressions(boundary, picks, pos):
    pieces = PIECES + [b"--" + boundary, boundary]
    data = b"".join(pieces[n] for n in picks)
    theirs, ours = reference(boundary), BoundaryDecoder(boundary)
    for name in ("preamble_re", "boundary_re"):
        expected = getattr(theirs, name).search(data, pos)
        found = getattr(ours, name).search(bytearray(data), pos)
        if expected is None:
            assert found is None, (name, data, pos)
        else:
            assert found is not None, (name, data, pos)
            assert (found.start(), found.end(), found.group(1)) == (
                expected.start(),
                expected.end(),
                expected.group(1),
            ), (name, data, pos)


def test_a_body_full_of_the_boundarys_text_is_searched_by_werkzeugs_expression():
    """A client may send boundary "-" and a part of dashes: every byte a place to check. The first
    place that is no boundary hands the search to Werkzeug's compiled expression (C, not a Python
    loop a place), with the same answer."""
    body = b"\r\nx" + b"-" * 100_000 + b"\r\n---\r\n"  # the one boundary: LB, "--", "-", LB
    ours = BoundaryDecoder(b"-")
    found = ours.boundary_re.search(body)
    assert isinstance(ours.boundary_re._regex, re.Pattern)
    assert found.span() == reference(b"-").boundary_re.search(body).span()


def test_the_decoder_keeps_every_attribute_werkzeugs_sets():
    """Its __init__ replaces Werkzeug's: an upgrade adding state must show here."""
    assert set(vars(BoundaryDecoder(BOUNDARY))) == set(vars(reference(BOUNDARY)))
    assert isinstance(reference(BOUNDARY).boundary_re, re.Pattern)


def events(decoder, body: bytes, piece: int) -> list:
    seen = []
    for start in range(0, len(body), piece):
        decoder.receive_data(body[start : start + piece])
        while not isinstance(event := decoder.next_event(), NeedData):
            seen.append(event)
    decoder.receive_data(None)
    while not isinstance(event := decoder.next_event(), NeedData):
        seen.append(event)
        if type(event).__name__ == "Epilogue":
            break
    return seen


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    st.sampled_from([1, 7, 64, 65536]),
)
def test_bodies_decode_to_the_same_events(contents, piece):
    files = [("files", (f"{n}.png", data)) for n, data in enumerate(contents)]
    prepared = requests.Request("POST", "http://x/", files=files, data={"name": "a"}).prepare()
    boundary = prepared.headers["Content-Type"].split("boundary=")[1].encode()
    ours = events(BoundaryDecoder(boundary), prepared.body, piece)
    assert ours == events(reference(boundary), prepared.body, piece)
    assert [e.data for e in ours if type(e).__name__ == "Data" and e.data] or not any(contents)


def test_the_gateway_parses_forms_with_it(offline_settings):
    formparser.MultipartDecoder = MultipartDecoder
    app = create_app(offline_settings)
    assert formparser.MultipartDecoder is BoundaryDecoder
    body = {"file": (io.BytesIO(b"\x89PNG..."), "d.png"), "model": "m"}
    with app.test_request_context("/", method="POST", data=body) as context:
        form, files = context.request.form, context.request.files
        assert form["model"] == "m" and files["file"].read() == b"\x89PNG..."
        assert files["file"].filename == "d.png"
