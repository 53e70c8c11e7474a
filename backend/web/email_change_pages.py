"""The browser face of changing the address: the form on /account, and the pages the two
links open (`/email/confirm` from the new address, `/email/revert` from the old one).

A link's GET only shows what its button would do (mail scanners open every link); the
button's POST does it. Bad, used and expired links get a friendly 400 page; an address
another account took meanwhile, a friendly 409 page (the database's unique index decides).
"""

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from backend.accounts.email_change import ChangeLink, ChangeLinkResult, ChangeRefused
from backend.accounts.email_change_links import Purpose, masked
from backend.accounts.features import TooManySignIns
from backend.accounts.schemas import EmailChangeIn
from backend.web.csrf import FORM_REFUSED
from backend.web.deps import (
    TOO_MANY_SIGNINS,
    TOO_MANY_SIGNINS_FORM,
    AddressChangeDep,
    AfterResponseDep,
    CsrfDep,
    MailStatusDep,
    SessionCookieDep,
    SessionDep,
    SignInDep,
    SigninLimitDep,
)
from backend.web.errors import field_messages
from backend.web.ratelimit import RateLimited
from backend.web.rendering import FormPage, render_form, templates
from backend.web.security_headers import NO_STORE
from backend.web.signin_pages import account_page

router = APIRouter(include_in_schema=False)

WRONG_PASSWORD = "This is not your current password."
_TEMPLATES: dict[Purpose, str] = {"confirm": "email_confirm.html", "revert": "email_revert.html"}
_STATUS_CODES = {
    ChangeLink.VALID: status.HTTP_200_OK,
    ChangeLink.DONE: status.HTTP_200_OK,
    ChangeLink.TAKEN: status.HTTP_409_CONFLICT,
}


def _link_page(purpose: Purpose, result: ChangeLinkResult, *, token: str) -> FormPage:
    return FormPage(
        _TEMPLATES[purpose],
        {
            "status": result.status.value,
            "username": result.username,
            # The confirm page is opened from the new address, which may be a stranger's
            # (a typo): the old one is half hidden there, as the new one is on the revert page.
            "old_email": result.old_email,
            "old_email_masked": masked(result.old_email or ""),
            "new_email": result.new_email,
            # The revert page is opened from the old address: the new one is half hidden.
            "new_email_masked": masked(result.new_email or ""),
            "confirmed": result.confirmed,
            "token": token,
        },
    )


def _change_form(
    account: FormPage, email: str, *, errors: dict[str, str] | None = None
) -> FormPage:
    # The account page with the change form's values (never the password).
    values = {**account.values, "change_email": email, "change_errors": errors}
    return replace(account, values=values)


async def _show(
    purpose: Purpose,
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    address_change: AddressChangeDep,
    token: str,
) -> Response:
    result = await address_change.check(session, token=token, purpose=purpose)
    page = _link_page(purpose, result, token=token)
    code = _STATUS_CODES.get(result.status, status.HTTP_400_BAD_REQUEST)
    return render_form(request, csrf, page, status_code=code)


async def _press(
    purpose: Purpose,
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    address_change: AddressChangeDep,
    after_response: AfterResponseDep,
    token: str,
    csrf_token: str,
) -> Response:
    if not csrf.is_valid(request, csrf_token, form=_TEMPLATES[purpose]):
        result = await address_change.check(session, token=token, purpose=purpose)
        page = _link_page(purpose, result, token=token).with_error(FORM_REFUSED)
        return render_form(request, csrf, page, status_code=status.HTTP_403_FORBIDDEN)
    if purpose == "confirm":
        result = await address_change.confirm(session, token=token, channel="form")
    else:
        result = await address_change.revert(session, token=token, channel="form")
    after_response.run_jobs(result.job_ids)
    page = _link_page(purpose, result, token=token)
    code = _STATUS_CODES.get(result.status, status.HTTP_400_BAD_REQUEST)
    return render_form(request, csrf, page, status_code=code)


@router.get("/email/confirm", response_class=HTMLResponse, dependencies=[NO_STORE])
async def confirm_link(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    address_change: AddressChangeDep,
    token: Annotated[str, Query()] = "",
) -> Response:
    return await _show("confirm", request, session, csrf, address_change, token)


@router.post("/email/confirm", response_class=HTMLResponse, dependencies=[NO_STORE])
async def confirm_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    address_change: AddressChangeDep,
    after_response: AfterResponseDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return await _press(
        "confirm", request, session, csrf, address_change, after_response, token, csrf_token
    )


@router.get("/email/revert", response_class=HTMLResponse, dependencies=[NO_STORE])
async def revert_link(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    address_change: AddressChangeDep,
    token: Annotated[str, Query()] = "",
) -> Response:
    return await _show("revert", request, session, csrf, address_change, token)


@router.post("/email/revert", response_class=HTMLResponse, dependencies=[NO_STORE])
async def revert_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    address_change: AddressChangeDep,
    after_response: AfterResponseDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return await _press(
        "revert", request, session, csrf, address_change, after_response, token, csrf_token
    )


@router.post("/account/email", response_class=HTMLResponse, dependencies=[NO_STORE])
async def change_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    sign_in: SignInDep,
    cookie: SessionCookieDep,
    signin_limit: SigninLimitDep,
    address_change: AddressChangeDep,
    after_response: AfterResponseDep,
    mail_status: MailStatusDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    user = await sign_in.user(session, token=cookie.read(request), kind="browser")
    if user is None:
        return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    account = await account_page(session, mail_status, user)
    page = _change_form(account, email)
    # The form is on the account page: its token is that page's.
    if not csrf.is_valid(request, csrf_token, form="account.html"):
        refused = page.with_error(FORM_REFUSED)
        return render_form(request, csrf, refused, status_code=status.HTTP_403_FORBIDDEN)
    # The password is checked as a sign-in checks it: the same per-client count.
    await signin_limit.check(request, channel="form", form=page)
    try:
        data = EmailChangeIn(email=email, password=password)
        result = await address_change.request(
            session, user=user, email=str(data.email), password=data.password, channel="form"
        )
    except ValidationError as exc:
        page = _change_form(account, email, errors=field_messages(exc))
        return render_form(request, csrf, page, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    except ChangeRefused as exc:
        page = _change_form(account, email, errors=exc.fields)
        return render_form(request, csrf, page, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    except TooManySignIns as exc:
        refused = page.with_error(TOO_MANY_SIGNINS_FORM.format(seconds=exc.retry_after))
        raise RateLimited(exc.retry_after, detail=TOO_MANY_SIGNINS, form=refused) from exc
    if not result.accepted:
        page = _change_form(account, email, errors={"password": WRONG_PASSWORD})
        return render_form(request, csrf, page, status_code=status.HTTP_401_UNAUTHORIZED)
    after_response.run_jobs(result.job_ids)
    return templates.TemplateResponse(
        request,
        "email_change_sent.html",
        {"email": str(data.email), "link_lifetime": address_change.link_lifetime},
    )
