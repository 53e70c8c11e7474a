"""/register/done: where a form registration leads, showing that browser what became of
its welcome email, until that is final.

The browser is recognised by its signed cookie (`registered_cookie.py`) and nothing else:
without it, or with a forged one, the page is the generic "your account is created". The
state is read from the outbox as it stands (`accounts/mail_status.py`). While it is not
final, a static script (`static/mail-status.js`, no inline script: the CSP stays) fetches
this page again now and then and swaps in its new state; with the state final, the page
carries no script at all.

Enumeration-safe mode: a registration with a taken address queued a notice to the owner
instead of a welcome email, to the same address. Its state is shown in the same words
(the kind of email is never named here, nor its attempts), so a state the two emails can
share reads alike. A notice past its address's budget is not queued at all, which a new
registration never is (its welcome email is always queued): that case is shown as a new
registration's email would be, waiting a moment and then sent, as the registration's own
answer already pretends an account was created. Outside that mode, an email not queued is
said plainly, with the resend offered.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.features import MailStatus
from backend.accounts.mail_status import StateWords, Status, state_words
from backend.web.deps import ContextDep, MailStatusDep, RegisteredCookieDep, SessionDep
from backend.web.registered_cookie import RegisteredBrowser
from backend.web.rendering import templates
from backend.web.security_headers import NO_STORE

router = APIRouter(include_in_schema=False)

# How long a pretended email (see above) waits in the queue before it reads as sent:
# about as long as a real one takes while the relay answers.
PRETENDED_QUEUE_TIME = timedelta(seconds=2)
NOT_QUEUED = StateWords("Not sent", "A welcome email could not be sent now.")


@dataclass(frozen=True)
class ShownState:
    status: Status | None
    words: StateWords
    final: bool

    @property
    def refused(self) -> bool:
        """The mail server refused it: the address may be wrong."""
        return self.status in ("failed", "suppressed")


@router.get("/register/done", response_class=HTMLResponse, dependencies=[NO_STORE])
async def register_done(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    cookie: RegisteredCookieDep,
    mail_status: MailStatusDep,
) -> Response:
    who = cookie.read(request)
    shown = None
    if who is not None:
        safe = context.registration.enumeration_safe
        shown = await _shown_state(session, who, mail_status=mail_status, safe=safe)
    return templates.TemplateResponse(
        request,
        "registered.html",
        {"who": who, "mail": shown, "link_lifetime": context.tokens.lifetime},
    )


async def _shown_state(
    session: AsyncSession, who: RegisteredBrowser, *, mail_status: MailStatus, safe: bool
) -> ShownState | None:
    # The same query with or without an email (id 0 is nobody's): the same time taken.
    state = await mail_status.of_job(session, job_id=who.email_job_id or 0)
    if who.email_job_id is None:
        if not safe:
            return ShownState(None, NOT_QUEUED, final=True)
        if datetime.now(UTC) - who.at < PRETENDED_QUEUE_TIME:
            return ShownState("queued", state_words("queued"), final=False)
        sent_at = who.at + PRETENDED_QUEUE_TIME
        return ShownState("sent", state_words("sent", sent_at=sent_at), final=True)
    if state is None:
        # Purged since (JOB_RETENTION_DAYS): nothing to tell, and nothing wrong.
        return None
    return ShownState(state.status, state.words, final=state.final)
