"""Signing in for programs: FastAPI's OAuth2 password flow at POST /api/token (so the
Authorize button of /docs works), GET /api/me and POST /api/logout with the bearer token.

The token is the same kind as the browser's session: opaque, stored only as a hash,
revocable (no JWT, which could not be taken back before it expired).
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel

from backend.accounts.features import TooManySignIns
from backend.accounts.schemas import UserOut
from backend.accounts.signin import SignInProblem
from backend.models import User
from backend.web.deps import TOO_MANY_SIGNINS, SessionDep, SignInDep, SigninLimitDep
from backend.web.ratelimit import RateLimited
from backend.web.responses import API_ERRORS, Problem

router = APIRouter(prefix="/api", responses=API_ERRORS, tags=["sign-in"])

# auto_error=False: a missing token gets our 401 (with its WWW-Authenticate), not FastAPI's.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)

WRONG_LOGIN = "Incorrect username or password"
UNCONFIRMED = (
    "This address is not confirmed yet: follow the link in the email we sent, or "
    'POST /api/verification/resend with {"email": "..."} to get a new one'
)
NOT_SIGNED_IN = "Not signed in, or the token expired or was revoked"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
UNAUTHORIZED = {
    "model": Problem,
    "description": "No bearer token, or an unknown, expired or revoked one.",
    "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
}


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


async def bearer_user(
    session: SessionDep,
    sign_in: SignInDep,
    token: Annotated[str | None, Depends(bearer_scheme)],
) -> User:
    user = await sign_in.user(session, token=token or "", kind="bearer")
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NOT_SIGNED_IN, headers=CHALLENGE)
    return user


@router.post(
    "/token",
    response_model=TokenOut,
    responses={
        status.HTTP_401_UNAUTHORIZED: {
            **UNAUTHORIZED,
            "description": "A wrong password, or no such account: the same answer for both.",
        },
        status.HTTP_403_FORBIDDEN: {
            "model": Problem,
            "description": (
                "The right password, on an address not confirmed yet "
                "(SIGNIN_REQUIRES_VERIFIED_EMAIL); `detail` says how to get a new link."
            ),
        },
    },
    summary="Sign in (OAuth2 password flow)",
    description=(
        "A form post (`application/x-www-form-urlencoded`) with `username` (a username or "
        "an email, any letter case) and `password`. Answers an opaque bearer token for "
        "`Authorization: Bearer`, valid `expires_in` seconds (API_TOKEN_MAX_AGE_SECONDS) "
        "unless revoked. 429 past SIGNIN_RATE_LIMIT, per client and per login."
    ),
)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    signin_limit: SigninLimitDep,
    sign_in: SignInDep,
) -> TokenOut | JSONResponse:
    await signin_limit.check(request, channel="api")
    try:
        result = await sign_in.sign_in(
            session,
            login=form.username,
            password=form.password,
            kind="bearer",
            user_agent=request.headers.get("user-agent"),
        )
    except TooManySignIns as exc:
        raise RateLimited(exc.retry_after, detail=TOO_MANY_SIGNINS) from exc
    if result is SignInProblem.UNCONFIRMED:
        return JSONResponse({"detail": UNCONFIRMED}, status_code=status.HTTP_403_FORBIDDEN)
    if isinstance(result, SignInProblem):
        return JSONResponse(
            {"detail": WRONG_LOGIN}, status_code=status.HTTP_401_UNAUTHORIZED, headers=CHALLENGE
        )
    return TokenOut(access_token=result.token, expires_in=result.expires_in)


@router.get(
    "/me",
    response_model=UserOut,
    responses={status.HTTP_401_UNAUTHORIZED: UNAUTHORIZED},
    summary="The signed-in user",
)
async def me(user: Annotated[User, Depends(bearer_user)]) -> UserOut:
    return UserOut.model_validate(user)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={status.HTTP_401_UNAUTHORIZED: UNAUTHORIZED},
    summary="Revoke this bearer token",
)
async def logout(
    session: SessionDep,
    sign_in: SignInDep,
    token: Annotated[str | None, Depends(bearer_scheme)],
) -> Response:
    if not await sign_in.sign_out(session, token=token or "", kind="bearer"):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NOT_SIGNED_IN, headers=CHALLENGE)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
