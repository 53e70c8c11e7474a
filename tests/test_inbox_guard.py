"""The dev inbox answers its own machine only: a rebound DNS name gets 400, and a
cross-site page cannot turn Jim on or delete the mail (it could read every link)."""

from collections.abc import Iterator

import httpx
import pytest

from backend.devstack.inbox import DevInbox


@pytest.fixture(scope="module")
def inbox() -> Iterator[DevInbox]:
    with DevInbox(smtp_port=0, http_port=0) as running:
        yield running


@pytest.fixture
def http(inbox: DevInbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inbox.api_url, timeout=10) as client:
        yield client
        client.delete("/api/v2/jim")


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8025", "10.0.0.5"])
def test_a_foreign_host_name_is_refused(http: httpx.Client, host: str) -> None:
    for path in ["/", "/api/v2/messages", "/api/v2/jim"]:
        response = http.get(path, headers={"Host": host})
        assert response.status_code == 400, (host, path)


@pytest.mark.parametrize("host", ["localhost:8025", "127.0.0.1", "[::1]:8025"])
def test_loopback_names_are_answered(http: httpx.Client, host: str) -> None:
    assert http.get("/api/v2/messages", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cross_site_write_is_refused(http: httpx.Client, headers: dict[str, str]) -> None:
    assert http.post("/api/v2/jim", headers=headers).status_code == 403
    assert http.get("/api/v2/jim").status_code == 404  # Jim stayed off
    assert http.delete("/api/v1/messages", headers=headers).status_code == 403


def test_the_inbox_page_itself_and_tools_may_write(http: httpx.Client, inbox: DevInbox) -> None:
    own = {"Origin": inbox.api_url, "Sec-Fetch-Site": "same-origin"}
    assert http.post("/api/v2/jim", headers=own).status_code == 201
    assert http.delete("/api/v2/jim").status_code == 200  # curl: no Origin at all
