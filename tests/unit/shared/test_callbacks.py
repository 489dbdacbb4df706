"""Where a callback may go, its signature, and the backoff between tries."""

import ipaddress

import pytest

from shared import callbacks
from shared.settings import Settings, SettingsError

LOCAL = ("public", "127.0.0.1", "::1")


@pytest.mark.parametrize(
    "address, allow, expected",
    [
        ("93.184.216.34", ("public",), True),
        ("127.0.0.1", ("public",), False),
        ("10.0.0.7", ("public",), False),
        ("192.168.1.1", ("public",), False),
        ("169.254.169.254", ("public",), False),  # a cloud's metadata address
        ("::1", ("public",), False),
        ("fd00::1", ("public",), False),
        ("224.0.0.1", ("public",), False),
        ("127.0.0.1", LOCAL, True),
        ("127.0.0.2", LOCAL, False),
        ("10.0.0.7", ("10.0.0.0/8",), True),
        ("93.184.216.34", ("10.0.0.0/8",), False),
        # IPv6 that carries IPv4 is judged by the IPv4: NAT64, 6to4, mapped, IPv4-compatible.
        ("64:ff9b::a9fe:a9fe", ("public",), False),
        ("64:ff9b::5db8:d822", ("public",), True),
        ("64:ff9b:1::5db8:d822", ("public",), False),  # local-use NAT64: anywhere it embeds
        ("2002:a9fe:a9fe::1", ("public",), False),
        ("::ffff:10.0.0.7", ("public",), False),
        ("::127.0.0.1", ("public",), False),
        ("::ffff:127.0.0.1", LOCAL, True),
        ("2606:4700::1111", ("public",), True),
    ],
)
def test_the_allow_list_lets_through_public_addresses_and_the_networks_it_names(address, allow, expected):
    assert callbacks.allowed(ipaddress.ip_address(address), allow) is expected


def test_a_url_is_delivered_to_the_address_that_was_checked_under_its_own_host_name():
    target = callbacks.resolve("http://localhost:8123/hooks?x=1", LOCAL)
    assert target.address in ("127.0.0.1", "::1")
    assert (target.host, target.port, target.path, target.host_header) == (
        "localhost",
        8123,
        "/hooks?x=1",
        "localhost:8123",
    )
    assert callbacks.resolve("https://127.0.0.1/", LOCAL).host_header == "127.0.0.1"
    # A name in Unicode goes on the wire in IDNA.
    unicode = callbacks.Target("u", "https", "bücher.de", 8443, "/", "1.2.3.4")
    assert (unicode.ascii_host, unicode.host_header) == ("xn--bcher-kva.de", "xn--bcher-kva.de:8443")


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://127.0.0.1/hook", "may not call"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http:///nohost", "http:// or https://"),
        ("https://a:b@example.org/", "user or password"),
        ("http://example.org:99999/", "not a URL"),
        ("http://example.org/" + "x" * 3000, "longer than"),
        ("http://bü..de/", "not a valid host name"),
    ],
)
def test_a_url_the_service_may_not_call_is_refused_with_the_reason(url, says):
    with pytest.raises(callbacks.CallbackRefused, match=says):
        callbacks.resolve(url, ("public",))


def test_a_signature_checks_out_only_with_the_same_secret_body_and_a_recent_time():
    body = b'{"type":"job.finished","id":"x"}'
    header = callbacks.sign("whsec_one", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert callbacks.verify("whsec_one", body, header, 1_700_000_010)
    assert not callbacks.verify("whsec_two", body, header, 1_700_000_010)
    assert not callbacks.verify("whsec_one", body + b" ", header, 1_700_000_010)
    assert not callbacks.verify("whsec_one", body, header, 1_700_001_000)  # replayed later
    assert not callbacks.verify("whsec_one", body, "v1=abc", 1_700_000_010)


def test_tries_back_off_from_5_seconds_to_at_most_an_hour_with_a_little_jitter():
    delays = [callbacks.delay(n) for n in range(1, 12)]
    assert 5 <= delays[0] <= 5.5 and 15 <= delays[1] <= 16.5 and 45 <= delays[2] <= 49.5
    assert all(3600 <= d <= 3960 for d in delays[7:])


def test_an_allow_list_entry_that_is_no_network_stops_the_service_at_start():
    with pytest.raises(SettingsError, match="RECOG_CALLBACK_ALLOW"):
        Settings.from_env({"RECOG_CALLBACK_ALLOW": "public,intranet"})
    assert Settings.from_env({"RECOG_CALLBACK_ALLOW": "public,10.0.0.0/8"}).callback_allow == (
        "public",
        "10.0.0.0/8",
    )
