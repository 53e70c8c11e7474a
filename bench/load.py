"""Benchmark: registrations under load, against the machine's own Argon2 ceiling.

Runs the app as a real `uvicorn` process on an embedded Postgres with the dev inbox,
and, side by side in one run:
- the Argon2 ceiling: hashes per second at the app's parameters, one thread per core,
  with nothing else running, measured just before and just after the app runs (the
  machine's speed drifts; the mean of the two is the ceiling);
- 16 clients registering flat out (each waits only the `Retry-After` of a 503), while
  `/healthz` is probed every 50 ms from a process of its own (as a load balancer would),
  against the same probe on the idle app;
- an open-loop sweep of offered load from half the ceiling to four times it: latency
  percentiles of accepted registrations, the share shed (503) and how fast sheds answer.
Returns Markdown for bench/RESULTS.md and writes PNG plots beside it.
"""

import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import matplotlib
from pydantic import SecretStr

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from backend.accounts.passwords import PasswordHasher
from backend.devstack.app_process import AppProcess
from backend.settings import Settings

HERE = Path(__file__).parent
CLIENTS = 16
_names = itertools.count()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


def argon2_ceiling(seconds: float = 6.0) -> float:
    """Hashes per second at the app's parameters, one thread per core, nothing else running."""
    hasher = PasswordHasher()
    cores = hasher.workers
    deadline = time.perf_counter() + seconds

    def hash_until_deadline() -> int:
        count = 0
        while time.perf_counter() < deadline:
            hasher._hash.hash("benchmark password")  # the very hasher the app runs
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        total = sum(pool.map(lambda _: hash_until_deadline(), range(cores)))
    return total / (time.perf_counter() - started)


def load_client(url: str) -> aiohttp.ClientSession:
    """The load generator's HTTP client. aiohttp rather than httpx: on 2 cores the client
    shares the CPU with the server it measures, and a client's backlog of responses to
    parse is counted as the server's latency. Measured here on the same requests: about
    0.14 ms of client CPU per request with aiohttp, 1.1 ms with httpx."""
    return aiohttp.ClientSession(
        url,
        connector=aiohttp.TCPConnector(limit=0),  # open loop: never queue in the client
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def register(client: aiohttp.ClientSession) -> tuple[int, float, float]:
    """Status, latency, and the Retry-After asked for (0 when none)."""
    name = f"load{next(_names)}"
    body = {"username": name, "email": f"{name}@example.com", "password": "benchmark pw"}
    started = time.perf_counter()
    async with client.post("/api/register", json=body) as response:
        await response.read()
        retry_after = float(response.headers.get("Retry-After", 0))
        return response.status, time.perf_counter() - started, retry_after


async def probe_health(url: str, seconds: float) -> list[float]:
    """`/healthz` every 50 ms for `seconds`, from a process of its own (`bench.probe`)."""
    prober = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.probe",
        f"{url}/healthz",
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await prober.communicate()
    assert prober.returncode == 0, "the health probe failed"
    return [float(latency) for latency in json.loads(output)]


@dataclass
class Saturation:
    seconds: float
    codes: list[int] = field(default_factory=list)
    health_idle: list[float] = field(default_factory=list)
    health_busy: list[float] = field(default_factory=list)

    @property
    def registered_per_second(self) -> float:
        return self.codes.count(201) / self.seconds


async def saturate(url: str, seconds: float) -> Saturation:
    result = Saturation(seconds)
    async with load_client(url) as client:
        result.health_idle = await probe_health(url, 5)

        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                code, _, retry_after = await register(client)
                result.codes.append(code)
                # A client told to come back later does so, as browsers and SDKs do with
                # Retry-After; one that asked again at once would only measure a busy loop.
                await asyncio.sleep(min(retry_after, max(0.0, deadline - time.perf_counter())))

        # The probe starts with the clients and stops a second before them: it sees only
        # the app under the full load.
        busy = asyncio.create_task(probe_health(url, seconds - 1))
        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
        result.health_busy = await busy
    return result


@dataclass
class Step:
    multiple: float
    rate: float
    accepted: list[float] = field(default_factory=list)
    shed: list[float] = field(default_factory=list)

    @property
    def shed_share(self) -> float:
        return len(self.shed) / max(1, len(self.accepted) + len(self.shed))


async def offered_load(url: str, rate: float, multiple: float, seconds: float) -> Step:
    """Open loop: requests start on a fixed schedule, whatever the answers take."""
    step = Step(multiple, rate)
    async with load_client(url) as client:

        async def one() -> None:
            code, latency, _ = await register(client)
            (step.accepted if code == 201 else step.shed).append(latency)

        tasks = []
        started = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return step


async def run(base: Settings) -> tuple[list[float], Saturation, list[Step]]:
    ceilings = [await asyncio.to_thread(argon2_ceiling)]
    ceiling = ceilings[0]
    print(f"argon2 ceiling: {ceiling:.1f} hashes/s", flush=True)
    settings = base.model_copy(
        update={
            "register_rate_limit": "",  # one client address sends everything here
            "environment": "test",
            "secret_key": SecretStr("benchmark-secret-key-not-for-production"),
        }
    )
    app = AppProcess(settings)
    try:
        app.start()
        saturation = await saturate(app.url, seconds=20)
        print(f"saturated: {saturation.registered_per_second:.1f} registrations/s", flush=True)
        steps = []
        for multiple in (0.5, 1.0, 2.0, 4.0):
            steps.append(await offered_load(app.url, ceiling * multiple, multiple, seconds=10))
            print(f"offered {multiple}x: {len(steps[-1].accepted)} in, {len(steps[-1].shed)} shed")
            await asyncio.sleep(2)  # let the queue empty between steps
    finally:
        app.stop()
        app.delete_log()
    ceilings.append(await asyncio.to_thread(argon2_ceiling))
    print(f"argon2 ceiling after: {ceilings[-1]:.1f} hashes/s", flush=True)
    return ceilings, saturation, steps


def report(ceilings: list[float], saturation: Saturation, steps: list[Step]) -> str:
    ms = 1000
    _plot_health(saturation)
    _plot_sweep(steps)
    ceiling = statistics.mean(ceilings)
    ratio = saturation.registered_per_second / ceiling
    lines = [
        "## Registrations under load",
        "",
        f"The app as one `uvicorn` process ({os.cpu_count()} cores shared with the load "
        "generator and Postgres), Argon2 at the app's parameters.",
        "",
        "| measure | value |",
        "| --- | ---: |",
        "| Argon2 ceiling, hashes/s (one thread per core, nothing else running): before / "
        f"after the app ran | {' / '.join(f'{c:.1f}' for c in ceilings)} (mean {ceiling:.1f}) |",
        f"| registrations/s, {CLIENTS} clients flat out for {saturation.seconds:.0f} s "
        f"| {saturation.registered_per_second:.1f} (**{ratio:.2f}** of the ceiling) |",
        f"| shed (503) meanwhile | {saturation.codes.count(503)} of {len(saturation.codes)} |",
        f"| `/healthz` idle: p50 / p99 (ms) | {percentile(saturation.health_idle, 0.5) * ms:.1f}"
        f" / {percentile(saturation.health_idle, 0.99) * ms:.1f} |",
        f"| `/healthz` under load: p50 / p99 (ms) | "
        f"{percentile(saturation.health_busy, 0.5) * ms:.1f} / "
        f"{percentile(saturation.health_busy, 0.99) * ms:.1f} |",
        "",
        "![/healthz idle and under load](health.png)",
        "",
        "Offered load, open loop (requests start on schedule whatever the answers take), "
        "10 s per step:",
        "",
        "| offered | req/s | accepted | p50 (ms) | p99 (ms) | shed | shed p99 (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step in steps:
        p50, p99 = (percentile(step.accepted, q) * ms for q in (0.5, 0.99))
        shed_p99 = f"{percentile(step.shed, 0.99) * ms:.0f}" if step.shed else "none shed"
        lines.append(
            f"| {step.multiple:g}x | {step.rate:.1f} | {len(step.accepted)} | {p50:.0f} | "
            f"{p99:.0f} | {step.shed_share:.0%} | {shed_p99} |"
        )
    lines += ["", "![latency and shedding against offered load](load.png)", ""]
    return "\n".join(lines)


def _plot_health(saturation: Saturation) -> None:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    labels = ["p50", "p99"]
    idle = [percentile(saturation.health_idle, q) * 1000 for q in (0.5, 0.99)]
    busy = [percentile(saturation.health_busy, q) * 1000 for q in (0.5, 0.99)]
    positions = range(len(labels))
    axes.bar([p - 0.2 for p in positions], idle, 0.4, label="idle")
    axes.bar([p + 0.2 for p in positions], busy, 0.4, label=f"{CLIENTS} clients registering")
    axes.set_xticks(list(positions), labels)
    axes.set_ylabel("ms")
    axes.set_title("/healthz latency")
    axes.legend()
    figure.tight_layout()
    figure.savefig(HERE / "health.png", dpi=110)
    plt.close(figure)


def _plot_sweep(steps: list[Step]) -> None:
    figure, latency = plt.subplots(figsize=(6.5, 3.8))
    offered = [step.multiple for step in steps]
    for share, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        latency.plot(offered, [percentile(s.accepted, share) for s in steps], "o-", label=label)
    latency.set_xlabel("offered load (x the Argon2 ceiling)")
    latency.set_ylabel("accepted registration latency (s)")
    shed = latency.twinx()
    shed.bar(offered, [s.shed_share * 100 for s in steps], 0.15, alpha=0.3, color="grey")
    shed.set_ylabel("shed (%)")
    latency.legend(loc="upper left")
    latency.set_title("Registration latency and shedding")
    figure.tight_layout()
    figure.savefig(HERE / "load.png", dpi=110)
    plt.close(figure)
