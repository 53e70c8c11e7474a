"""The client key: the peer, or behind trusted proxies the address they saw; IPv6 by /64."""

from ipaddress import ip_address, ip_network

import pytest
from pydantic import ValidationError

from backend.settings import Settings
from backend.web.client_key import bucket, client_address

PROXIES = (ip_network("10.0.0.0/8"), ip_network("2001:db8:ffff::/48"))


def address(peer: str | None, *forwarded_for: str, trusted: bool = True) -> str | None:
    found = client_address(peer, list(forwarded_for), trusted_proxies=PROXIES if trusted else ())
    return None if found is None else str(found)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() -> None:
    assert address("10.1.2.3", "198.51.100.7", trusted=False) == "10.1.2.3"
    assert address("203.0.113.5", "198.51.100.7") == "203.0.113.5"  # not one of ours


def test_a_trusted_proxy_is_believed_and_the_walk_starts_from_the_right() -> None:
    assert address("10.1.2.3", "198.51.100.7") == "198.51.100.7"
    # The client wrote the left part itself: only the entry our proxy appended counts.
    assert address("10.1.2.3", "1.2.3.4, 5.6.7.8, 198.51.100.7") == "198.51.100.7"
    # A chain of our own proxies is walked past, however the header lines are split.
    assert address("10.1.2.3", "1.2.3.4, 198.51.100.7", "10.9.9.9, 10.8.8.8") == "198.51.100.7"
    assert address("2001:db8:ffff::2", "2001:db8:1::1, 2001:db8:ffff::9") == "2001:db8:1::1"


def test_odd_forwarded_values() -> None:
    assert address("10.1.2.3") == "10.1.2.3"  # no header: the proxy itself
    assert address("10.1.2.3", "") == "10.1.2.3"
    # Ports, brackets, and a hop no proxy of ours would write: stop at the last we vouch for.
    assert address("10.1.2.3", "198.51.100.7:4711") == "198.51.100.7"
    assert address("10.1.2.3", "[2001:db8::7]:4711") == "2001:db8::7"
    assert address("10.1.2.3", "198.51.100.7, unknown, 10.0.0.2") == "10.0.0.2"
    # Everyone in the chain is ours: the leftmost is as far as anyone can tell.
    assert address("10.1.2.3", "10.0.0.1, 10.0.0.2") == "10.0.0.1"


def test_a_dual_stack_peer_is_its_ipv4_address() -> None:
    assert address("::ffff:10.1.2.3", "198.51.100.7") == "198.51.100.7"
    assert address("::ffff:203.0.113.5", trusted=False) == "203.0.113.5"


def test_peers_without_an_address() -> None:
    assert address(None, "198.51.100.7") is None
    assert address("testclient", "198.51.100.7") is None


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_ipv6_clients_share_a_bucket_per_64(client: str, key: str) -> None:
    assert bucket(ip_address(client)) == key


def test_trusted_proxies_are_read_strictly_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", " 10.0.0.0/8, 192.0.2.1 ,2001:db8::/32,")
    settings = Settings(_env_file=None, environment="development")
    assert settings.trusted_proxies == "10.0.0.0/8,192.0.2.1/32,2001:db8::/32"
    assert settings.trusted_proxy_networks == (
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.1/32"),
        ip_network("2001:db8::/32"),
    )
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert (
        Settings(_env_file=None, environment="development").trusted_proxy_networks == ()
    )  # the default: nobody


@pytest.mark.parametrize("value", ["10.0.0.1/8", "proxy.internal", "10.0.0.0/33"])
def test_a_malformed_trusted_proxy_is_refused_at_start(value: str) -> None:
    # "10.0.0.1/8" has host bits set: refused rather than silently widened to 10.0.0.0/8.
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(_env_file=None, environment="development", trusted_proxies=value)
