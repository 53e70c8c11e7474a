"""Who a request comes from, for per-client limits.

The peer, unless the peer is one of TRUSTED_PROXIES: then X-Forwarded-For, walked from
the right (each proxy appends the address it saw) past the trusted hops. Entries left
of the first untrusted one are whatever the client chose to send, so they never count.
IPv6 clients are bucketed by their /64, the smallest block a subscriber usually gets:
one address per client would let anyone with a /64 rotate through 2^64 buckets.
"""

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from fastapi import Request

Address = IPv4Address | IPv6Address
Networks = Sequence[IPv4Network | IPv6Network]


def client_key(request: Request, *, trusted_proxies: Networks) -> str:
    peer = request.client.host if request.client else None
    forwarded = request.headers.getlist("x-forwarded-for")
    address = client_address(peer, forwarded, trusted_proxies=trusted_proxies)
    if address is None:
        # No IP at all (a unix socket, an ASGI test client): one shared bucket.
        return f"peer:{peer or 'unknown'}"
    return bucket(address)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], *, trusted_proxies: Networks
) -> Address | None:
    address = _parse(peer)
    if address is None or not _trusted(address, trusted_proxies):
        return address
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        hop_address = _parse(hop)
        if hop_address is None:
            # A hop no proxy of ours would write: stop at the last one we can vouch for.
            break
        address = hop_address
        if not _trusted(address, trusted_proxies):
            break
    return address


def bucket(address: Address) -> str:
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return str(address)


def _trusted(address: Address, trusted_proxies: Networks) -> bool:
    return any(address in network for network in trusted_proxies)


def _parse(value: str | None) -> Address | None:
    """An address as peers and proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
    `[::1]:5678`; an IPv4-mapped IPv6 address (a dual-stack socket) as the IPv4 one."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
