"""The operator page, `/ops/jobs`: the queue by state and kind, the mail relay's state, the
jobs themselves, and retry and cancel for one job or a filtered set; the suppressed
addresses, and lifting one (`ops_suppressions.py`).

Mounted only when OPS_PASSWORD is set (backend/main.py); behind HTTP basic auth
(ops_auth.py). Plain forms: a GET form filters, POST forms act (with the CSRF token of the
registration form) and redirect back with what was done in the query string. No payload
is ever shown: payloads hold addresses and tokens.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from backend.audit.service import record_job_actions
from backend.jobs import admin
from backend.mail.relay import recorded_states
from backend.mail.suppressions import count_suppressions, list_suppressions
from backend.models import JOB_STATUSES
from backend.web.deps import AfterResponseDep, ContextDep, CsrfDep, SessionDep
from backend.web.ops_auth import OperatorDep, require_operator
from backend.web.rendering import FormPage, render_form
from backend.web.security_headers import NO_STORE

# NO_STORE first: the 401 and 429 answers get it too.
router = APIRouter(
    prefix="/ops", include_in_schema=False, dependencies=[NO_STORE, Depends(require_operator)]
)

PAGE_SIZE = 100
ERROR_PREVIEW = 160
SUPPRESSIONS_SHOWN = 100
Action = Literal["retried", "cancelled"]
# What became of a lift of a suppressed address (`ops_suppressions.py`); the address
# itself stays out of the URL, and so out of access logs.
Lifted = Literal["lifted", "absent"]


@dataclass(frozen=True)
class JobsFilter:
    state: str = ""  # empty: any
    kind: str = ""  # empty: any

    @property
    def statuses(self) -> list[str]:
        return [self.state] if self.state else list(JOB_STATUSES)

    def url(self, **extra: str | int | None) -> str:
        """This filter's page, with more query parameters."""
        params = {"state": self.state, "kind": self.kind, **extra}
        query = urlencode({k: v for k, v in params.items() if v not in ("", None)})
        return f"/ops/jobs?{query}" if query else "/ops/jobs"


StateParam = Annotated[str, Query(max_length=16)]
# No NUL byte: Postgres text cannot hold one, and asyncpg's refusal would be a 500.
NO_NUL = r"^[^\x00]*$"
KindParam = Annotated[str, Query(max_length=64, pattern=NO_NUL)]
# jobs.id is a bigint: a larger number in a link or a form is a 422, not asyncpg's overflow
# (a 500) when it reaches the query.
JOB_ID_MAX = 2**63 - 1
JobIdParam = Annotated[int | None, Query(ge=1, le=JOB_ID_MAX)]


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    csrf: CsrfDep,
    session: SessionDep,
    operator: OperatorDep,
    state: StateParam = "",
    kind: KindParam = "",
    before: JobIdParam = None,
    done: Action | None = None,
    count: Annotated[int | None, Query(ge=0, le=JOB_ID_MAX)] = None,
    job: JobIdParam = None,
    suppression: Lifted | None = None,
) -> Response:
    notice = _notice(done, count, job) if done is not None and count is not None else None
    if suppression is not None:
        notice = _LIFTED[suppression]
    if state and state not in JOB_STATUSES:
        return await render_jobs_page(
            request,
            csrf,
            session,
            JobsFilter(kind=kind),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            error=f"There is no state {state!r}; choose one of the list.",
        )
    return await render_jobs_page(
        request, csrf, session, JobsFilter(state, kind), before=before, notice=notice
    )


class ActionForm(BaseModel):
    """A retry or cancel: one job (job_id), or the filter's jobs up to `through`."""

    csrf_token: str = ""
    job_id: int | None = Field(default=None, ge=1, le=JOB_ID_MAX)
    state: str = Field(default="", max_length=16, pattern=NO_NUL)
    kind: str = Field(default="", max_length=64, pattern=NO_NUL)
    through: int | None = Field(default=None, ge=1, le=JOB_ID_MAX)


ActionFormDep = Annotated[ActionForm, Form()]


def _action_route(action: Action) -> Callable[..., Awaitable[Response]]:
    """The POST route of one action (retry or cancel): the same form, checks and page."""

    async def act_on_jobs(
        request: Request,
        context: ContextDep,
        session: SessionDep,
        csrf: CsrfDep,
        operator: OperatorDep,
        after_response: AfterResponseDep,
        form: ActionFormDep,
    ) -> Response:
        """One job, or every job of the filter up to `through` (the newest the page showed:
        jobs queued since are left alone). Audited in the same transaction as the change."""
        job_id, where = form.job_id, JobsFilter(form.state, form.kind)
        shown = JobsFilter(where.state if where.state in JOB_STATUSES else "", where.kind)
        if not csrf.is_valid(request, form.csrf_token, form="ops_jobs.html"):
            return await render_jobs_page(
                request,
                csrf,
                session,
                shown,
                status_code=status.HTTP_403_FORBIDDEN,
                error="This form expired or did not come from this page; nothing was done. "
                "Please try again.",
            )
        allowed = admin.RETRYABLE if action == "retried" else admin.CANCELLABLE
        if job_id is None and where.state not in allowed:
            return await render_jobs_page(
                request,
                csrf,
                session,
                shown,
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                error=f"Only {' or '.join(allowed)} jobs can be {action}: choose one of these "
                "states first; nothing was done.",
            )
        details: dict[str, object] = {"via": "ops page", "client": operator.client}
        if job_id is None:
            details["filter"] = {"state": where.state, "kind": where.kind, "through": form.through}
        act = admin.retry if action == "retried" else admin.cancel
        changed = await act(
            session,
            by=operator.name,
            record=record_job_actions,
            job_id=job_id,
            statuses=allowed if job_id is not None else [where.state],
            kind=(where.kind or None) if job_id is None else None,
            through_id=form.through if job_id is None else None,
            details=details,
        )
        await session.commit()
        if action == "retried" and changed:
            # Run them here at once (a batch's worth); any more, the poller drains.
            batch = context.settings.job_batch_size
            after_response.run_jobs(job.id for job in changed[:batch])
            if len(changed) > batch:
                context.runner.wake()
        back = shown.url(done=action, count=len(changed), job=job_id)
        return RedirectResponse(back, status_code=status.HTTP_303_SEE_OTHER)

    return act_on_jobs


router.post("/jobs/retry", response_class=HTMLResponse)(_action_route("retried"))
router.post("/jobs/cancel", response_class=HTMLResponse)(_action_route("cancelled"))


async def render_jobs_page(
    request: Request,
    csrf: CsrfDep,
    session: SessionDep,
    where: JobsFilter,
    *,
    before: int | None = None,
    status_code: int = status.HTTP_200_OK,
    notice: tuple[str, bool] | None = None,
    error: str | None = None,
) -> Response:
    by_kind = await admin.kind_counts(session)
    totals = admin.totals(by_kind)
    jobs = await admin.list_jobs(
        session,
        statuses=where.statuses,
        kind=where.kind or None,
        before_id=before,
        limit=PAGE_SIZE,
    )
    if "succeeded" in where.statuses:
        # Counting them would read every succeeded job; no action applies to them anyway.
        matching, newest = len(jobs), None
    else:
        matching, newest = await admin.count_jobs(
            session, statuses=where.statuses, kind=where.kind or None
        )
    relays = await recorded_states(session)
    suppressed = await list_suppressions(session, limit=SUPPRESSIONS_SHOWN)
    kinds = sorted({*by_kind, where.kind} - {""})
    page = FormPage(
        "ops_jobs.html",
        {
            "where": where,
            "states": JOB_STATUSES,
            "kinds": kinds,
            "by_kind": by_kind,
            "totals": totals,
            "relays": relays,
            "suppressed": suppressed,
            "suppressed_total": await count_suppressions(session),
            "jobs": jobs,
            "matching": matching,
            "newest": newest,
            "older": where.url(before=jobs[-1].id) if len(jobs) == PAGE_SIZE else None,
            "paged": before is not None,
            "can_retry": where.state in admin.RETRYABLE,
            "can_cancel": where.state in admin.CANCELLABLE,
            "retryable": admin.RETRYABLE,
            "cancellable": admin.CANCELLABLE,
            "error_preview": ERROR_PREVIEW,
            "succeeded_window": admin.SUCCEEDED_WINDOW,
            "notice": notice,
            "error": error,
        },
    )
    return render_form(request, csrf, page, status_code=status_code)


def _notice(done: Action, count: int, job: int | None) -> tuple[str, bool]:
    """What the redirect after an action says, and whether it went as asked."""
    if job is not None:
        if count:
            return f"Job {job} {done}.", True
        return f"Job {job} was not {done}: it is no longer in a state that allows it.", False
    if count == 0:
        return f"No job was {done}: none matched any more.", False
    return f"{count} job{'s' if count != 1 else ''} {done}.", True


_LIFTED: dict[Lifted, tuple[str, bool]] = {
    "lifted": ("The address is off the suppression list: its next email will be sent.", True),
    "absent": ("That address was not on the suppression list (any more); nothing was done.", False),
}
