"""translated(): which driver errors become StoreUnavailable. The driver's exceptions are raised
here by hand: an outage is produced for real in the integration tests, a refused query is not."""

import pytest
from cassandra import InvalidRequest, OperationTimedOut, ReadTimeout
from cassandra.cluster import NoHostAvailable

from shared.store import StoreUnavailable
from shared.store.cassandra_results import _translated_rows
from shared.store.session import translated


@pytest.mark.parametrize(
    "error",
    [
        NoHostAvailable("no host", {}),
        OperationTimedOut("timed out"),
        ReadTimeout("read timeout", consistency=1, required_responses=1, received_responses=0),
    ],
    ids=["no-host", "client-timeout", "server-timeout"],
)
def test_an_outage_becomes_store_unavailable(error):
    with pytest.raises(StoreUnavailable, match="Cassandra is not answering") as caught, translated():
        raise error
    assert caught.value.__cause__ is error


def test_a_refused_query_is_not_an_outage():
    """Retrying cannot cure an unknown table: it must fail loudly, not be retried for an hour."""
    with pytest.raises(InvalidRequest), translated():
        raise InvalidRequest("unconfigured table images")


def test_a_page_fetched_while_iterating_is_translated_too():
    def rows():
        yield {"n": 1}
        raise OperationTimedOut("the second page timed out")

    iterator = _translated_rows(rows())
    assert next(iterator) == {"n": 1}
    with pytest.raises(StoreUnavailable):
        next(iterator)
