"""Lifting a suppressed address from the operator page (`POST /ops/suppressions/remove`).

The list itself is shown on `/ops/jobs` (ops.py), with a button per address: the form
carries the page's CSRF token and filter, and the answer is a redirect back to the page,
saying what was done but not to whom (no address in a URL, so none in an access log).
Audited as `suppression.removed`, in the transaction that removes the entry.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from backend.accounts import suppressions
from backend.web.deps import CsrfDep, SessionDep
from backend.web.ops import NO_NUL, JobsFilter, render_jobs_page
from backend.web.ops_auth import OperatorDep, require_operator
from backend.web.security_headers import NO_STORE

router = APIRouter(
    prefix="/ops", include_in_schema=False, dependencies=[NO_STORE, Depends(require_operator)]
)


class LiftForm(BaseModel):
    csrf_token: str = ""
    address: str = Field(min_length=1, max_length=320, pattern=NO_NUL)
    # The filter the page was showing, kept for the way back.
    state: str = Field(default="", max_length=16, pattern=NO_NUL)
    kind: str = Field(default="", max_length=64, pattern=NO_NUL)


@router.post("/suppressions/remove", response_class=HTMLResponse)
async def lift_suppression(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    operator: OperatorDep,
    form: Annotated[LiftForm, Form()],
) -> Response:
    shown = JobsFilter(form.state, form.kind)
    if not csrf.is_valid(request, form.csrf_token, form="ops_jobs.html"):
        return await render_jobs_page(
            request,
            csrf,
            session,
            JobsFilter(kind=form.kind),
            status_code=status.HTTP_403_FORBIDDEN,
            error="This form expired or did not come from this page; nothing was done. "
            "Please try again.",
        )
    removed = await suppressions.lift(
        session,
        address=form.address,
        by=operator.name,
        details={"via": "ops page", "client": operator.client},
    )
    await session.commit()
    back = shown.url(suppression="lifted" if removed else "absent")
    return RedirectResponse(f"{back}#suppressed", status_code=status.HTTP_303_SEE_OTHER)
