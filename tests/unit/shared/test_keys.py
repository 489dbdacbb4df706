"""API keys: their form, what is stored of them, and names unique among live keys."""

import pytest

from shared import keys
from shared.jobs import utcnow
from tests.fakes import MemoryKeys


def test_a_key_opens_its_row_and_the_row_holds_no_secret():
    row, key = keys.new_key("alice", "acme", ("submit",), utcnow())
    key_id, secret = keys.split(key)
    assert key_id == row.key_id and row.opens_with(secret)
    assert secret not in repr(row) and not row.opens_with(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert (row.name, row.tenant, row.scopes) == ("alice", "acme", frozenset({"submit"}))


@pytest.mark.parametrize(
    "text", ["", "recog_", "Bearer x", "recog_XYZ_" + "s" * 43, "recog_0123456789abcdef_s"]
)
def test_text_that_is_not_a_key_splits_to_none(text):
    assert keys.split(text) is None


@pytest.mark.parametrize(
    ("name", "tenant", "scopes", "said"),
    [
        ("Alice", "a", ("read",), "name 'Alice'"),
        ("a", "with space", ("read",), "tenant 'with space'"),
        ("a", "a", ("write",), "scopes must be some of submit, read, admin"),
        ("a", "a", (), "got none"),
    ],
)
def test_bad_names_tenants_and_scopes_say_what_is_allowed(name, tenant, scopes, said):
    with pytest.raises(keys.KeySpecError, match=said):
        keys.new_key(name, tenant, scopes, utcnow())


def test_a_live_name_is_taken_until_it_is_revoked():
    table = MemoryKeys()
    first = keys.create(table, "ci", None, ("read",), utcnow())
    with pytest.raises(keys.KeySpecError, match="a live key is named 'ci'"):
        keys.create(table, "ci", None, ("read",), utcnow())
    assert keys.revoke(table, "ci", utcnow()) == 1 and keys.revoke(table, "ci", utcnow()) == 0
    second = keys.create(table, "ci", "team", ("read",), utcnow())
    assert second != first
    assert [(k.tenant, k.live) for k in table.every()] == [("ci", False), ("team", True)]
