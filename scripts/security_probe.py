"""Probe a running app from outside, as the security review did, and print what it found:

    .venv/bin/python -m scripts.security_probe [--app http://localhost:8000]
        [--inbox http://localhost:8025] [--pid PID]

Against `make dev` (or any deployment with a MailHog-compatible inbox). It registers a few
users with addresses at `example.com` and never cleans them up. With --pid (the uvicorn
process), it also reads the process's resident memory around the large bodies. Each line is
one finding: what was sent, what came back.
"""

import argparse
import asyncio
import email
import email.policy
import json
import re
import secrets
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

PASSWORD = "probe password 1234"
BIG = 10 * 1024 * 1024


def rss_mib(pid: int | None) -> float:
    """The process's resident memory in MiB (0 without a pid)."""
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def user(name: str, address: str) -> dict[str, str]:
    return {"username": name, "email": address, "password": PASSWORD}


async def mails_to(inbox: httpx.AsyncClient, fragment: str) -> list[email.message.Message]:
    items = (await inbox.get("/api/v2/messages", params={"limit": 250})).json()["items"]
    found: list[email.message.Message] = []
    for item in items:
        raw = item["Raw"]["Data"]
        message = email.message_from_string(raw, policy=email.policy.default)
        if any(fragment in address for address in item["Raw"]["To"]):
            found.append(message)
    return found


def link_in(message: email.message.Message, path: str) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            text = payload.decode() if isinstance(payload, bytes) else str(payload)
            match = re.search(rf"https?://\S+{re.escape(path)}\?token=[\w.\-]+", text)
            if match:
                return match.group(0)
    raise SystemExit(f"no {path} link in the email")


async def wait_for_mail(inbox: httpx.AsyncClient, fragment: str, count: int) -> int:
    deadline = time.monotonic() + 15
    found = 0
    while time.monotonic() < deadline:
        found = len(await mails_to(inbox, fragment))
        if found >= count:
            break
        await asyncio.sleep(0.5)
    return found


def raw_status(url: str, request: bytes) -> str:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30) as sock:
        # In pieces: a server that refuses early answers, then closes before the rest.
        for start in range(0, len(request), 65536):
            try:
                sock.sendall(request[start : start + 65536])
            except OSError:
                break
        try:
            answer = sock.recv(200)
        except OSError as exc:
            return f"connection {type(exc).__name__}"
    return answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed, no answer"


async def probe(app_url: str, inbox_url: str, pid: int | None) -> None:
    tag = secrets.token_hex(3)
    app = httpx.AsyncClient(base_url=app_url, timeout=60)
    inbox = httpx.AsyncClient(base_url=inbox_url, timeout=30)
    async with app, inbox:
        metrics = await app.get("/metrics")
        print(f"1. GET /metrics without a token: {metrics.status_code}")

        before = rss_mib(pid)
        body = json.dumps({**user(f"big{tag}", f"big{tag}@example.com"), "x": "a" * BIG})

        async def post_big() -> int:
            response = await app.post(
                "/api/register", content=body, headers={"content-type": "application/json"}
            )
            return response.status_code

        started = time.perf_counter()
        health_times = []
        peak = before
        posts = asyncio.gather(*(post_big() for _ in range(4)))
        while not posts.done():
            tick = time.perf_counter()
            await app.get("/healthz")
            health_times.append(time.perf_counter() - tick)
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.02)
        statuses = await posts
        print(
            f"2. four 10 MiB JSON bodies at once: {sorted(set(statuses))} in "
            f"{time.perf_counter() - started:.2f} s; RSS {before:.0f} MiB, peak {peak:.0f} MiB "
            f"(pid given: {pid is not None}); /healthz worst "
            f"{max(health_times, default=0) * 1000:.0f} ms"
        )
        header = b"X-Big: " + b"a" * BIG + b"\r\n"
        host = urlsplit(app_url).netloc.encode()
        request = b"GET /livez HTTP/1.1\r\nHost: " + host + b"\r\n" + header + b"\r\n"
        print(f"   a 10 MiB header: {await asyncio.to_thread(raw_status, app_url, request)}")

        name = f"scan{tag}"
        await app.post("/api/register", json=user(name, f"{name}@example.com"))
        if not await wait_for_mail(inbox, f"{name}@", 1):
            raise SystemExit("the welcome email never came")
        [welcome] = await mails_to(inbox, f"{name}@")
        link = urlsplit(link_in(welcome, "/verify"))
        scanned = await app.get(f"{link.path}?{link.query}")  # a mail scanner follows it
        again = await app.get(f"{link.path}?{link.query}")
        confirmed = "already" in again.text.lower()
        print(
            f"3. GET of the verify link by a 'scanner': {scanned.status_code}; the account was "
            f"{'CONFIRMED by the GET' if confirmed else 'left unconfirmed'}"
        )

        local = f"tag{tag}"
        for number in range(5):
            address = f"{local}+{number}@example.com"
            await app.post("/api/register", json=user(f"{local}_{number}", address))
        await asyncio.sleep(3)
        count = len(await mails_to(inbox, f"{local}+"))
        print(f"4. five registrations {local}+0..4@: {count} welcome emails to that one mailbox")

        redirect = await app.get("/register/", headers={"Host": "evil.example"})
        print(
            f"5. GET /register/ with Host: evil.example: {redirect.status_code} "
            f"{redirect.headers.get('location', '')}"
        )
        head = await app.head("/healthz")
        print(f"   HEAD /healthz: {head.status_code}")
        page = await app.get("/register")
        server, frames = page.headers.get("server"), page.headers.get("x-frame-options")
        policy = "yes" if "permissions-policy" in page.headers else "no"
        print(f"   headers: server={server!r} x-frame-options={frames!r} permissions={policy}")
        jim = await inbox.post(
            "/api/v2/jim", headers={"Origin": "https://evil.example", "Content-Type": "text/plain"}
        )
        print(f"   inbox: a cross-site POST /api/v2/jim: {jim.status_code}")
        if jim.status_code == 201:
            await inbox.delete("/api/v2/jim")
        rebound = await inbox.get("/api/v2/messages", headers={"Host": "evil.example"})
        print(f"   inbox: Host evil.example: {rebound.status_code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="http://localhost:8000")
    parser.add_argument("--inbox", default="http://localhost:8025")
    parser.add_argument("--pid", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(probe(args.app, args.inbox, args.pid))


if __name__ == "__main__":
    main()
