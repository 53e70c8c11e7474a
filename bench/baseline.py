"""Benchmark: the backlog drain against the physical limit of one sender.

The limit: a raw `smtplib` client, one connection, sending the same welcome emails
already built (no claim, no rendering, no record) as fast as the inbox takes them. The
app: a backlog of the same number of jobs drained at its default settings
(`JOB_CONCURRENCY` batches of `JOB_BATCH_SIZE` at once), each delivery recorded with its
audit row before the next message goes on that connection. Both into the same inbox,
directly, rounds interleaved.
"""

import argparse
import asyncio
import smtplib
import statistics
import time
import uuid
from email.message import Message
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from backend.accounts.passwords import PasswordHasher
from backend.context import TEMPLATES_DIR, AppContext
from backend.mail.render import EmailRenderer
from backend.mail.sender import OutgoingEmail
from backend.settings import Settings
from bench.backlog import drain_once, inbox_count

HERE = Path(__file__).parent


async def _built_messages(context: AppContext, count: int) -> list[Message]:
    renderer = EmailRenderer(TEMPLATES_DIR)
    messages = []
    for n in range(count):
        token = context.tokens.issue(user_id=uuid.uuid4(), email=f"raw{n}@example.com")
        content = renderer.render(
            "welcome",
            username=f"raw{n}",
            verified=False,
            verify_url=f"http://localhost:8000/verify?token={token}",
            resend_url="http://localhost:8000/verify/resend",
            link_lifetime=context.tokens.lifetime,
            base_url="http://localhost:8000",
        )
        email = OutgoingEmail(
            to=f"raw{n}@example.com",
            to_name=f"raw{n}",
            message_id=f"<raw{n}@bench>",
            content=content,
        )
        messages.append(await context.sender.build(email))
    return messages


async def raw_smtplib(settings: Settings, inbox: httpx.AsyncClient, count: int) -> float:
    """Seconds for one `smtplib` connection to hand `count` built emails to the inbox."""
    context = AppContext.build(settings)
    try:
        messages = await _built_messages(context, count)
    finally:
        await context.close()
    await inbox.delete("/api/v1/messages")

    def send_all() -> None:
        with smtplib.SMTP(settings.mail_server, settings.mail_port) as smtp:
            for message in messages:
                smtp.send_message(message)

    started = time.perf_counter()
    await asyncio.to_thread(send_all)
    while await inbox_count(inbox) < count:  # noqa: ASYNC110 (polling another process)
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def run(base: Settings, inbox_url: str, args: argparse.Namespace) -> str:
    settings = base.model_copy(update={"job_worker_enabled": False})
    password_hash = await PasswordHasher().hash("bench password")
    raw: list[float] = []
    drained: list[float] = []
    async with httpx.AsyncClient(base_url=inbox_url, timeout=30) as inbox:
        for round_number in range(1, args.rounds + 1):
            raw.append(await raw_smtplib(settings, inbox, args.emails))
            drained.append((await drain_once(settings, inbox, args.emails, password_hash))[0])
            print(
                f"round {round_number}  raw smtplib {raw[-1]:.2f} s  app drain {drained[-1]:.2f} s",
                flush=True,
            )
    raw_rate = args.emails / statistics.median(raw)
    app_rate = args.emails / statistics.median(drained)
    _plot(args.emails, raw, drained)
    concurrency, batch = settings.job_concurrency, settings.mail_batch_size
    return "\n".join(
        [
            f"## The drain against one raw sender: {args.emails:,} welcome emails",
            "",
            __doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
            "",
            "| sender | rounds (s) | median (s) | emails/s |",
            "| --- | --- | ---: | ---: |",
            f"| raw `smtplib`, one connection, emails built beforehand | "
            f"{', '.join(f'{r:.2f}' for r in raw)} | {statistics.median(raw):.2f} | "
            f"{raw_rate:,.0f} |",
            f"| the app's drain ({concurrency} x {batch}), recorded as delivered | "
            f"{', '.join(f'{r:.2f}' for r in drained)} | {statistics.median(drained):.2f} | "
            f"{app_rate:,.0f} |",
            "",
            f"The drain runs at **{app_rate / raw_rate:.2f}** of the raw single-connection rate.",
            "",
            "![drain against a raw sender](drain.png)",
            "",
        ]
    )


def _plot(count: int, raw: list[float], drained: list[float]) -> None:
    figure, axes = plt.subplots(figsize=(6, 3.2))
    labels = ["raw smtplib\n(1 connection)", "app drain\n(defaults)"]
    rates = [[count / s for s in raw], [count / s for s in drained]]
    axes.barh(labels, [statistics.median(r) for r in rates], color=["grey", "tab:blue"])
    for y, values in enumerate(rates):
        axes.plot(values, [y] * len(values), "k.", label="rounds" if y == 0 else None)
    axes.set_xlabel("emails per second into the inbox")
    axes.set_title(f"Draining {count:,} welcome emails")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(HERE / "drain.png", dpi=110)
    plt.close(figure)
