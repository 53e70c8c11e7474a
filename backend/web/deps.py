"""Request dependencies, as `Annotated` aliases so handlers read like their signature."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from backend.context import TEMPLATES_DIR, AppContext
from backend.settings import Settings
from backend.web.csrf import Csrf
from backend.web.ratelimit import ClientLimit

templates = Jinja2Templates(directory=TEMPLATES_DIR / "pages")


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    return context.settings


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    async with context.sessionmaker() as session:
        yield session


def get_register_limit(context: ContextDep) -> ClientLimit:
    return ClientLimit(
        context.register_limit, trusted_proxies=context.settings.trusted_proxy_networks
    )


def get_resend_limit(context: ContextDep) -> ClientLimit:
    return ClientLimit(
        context.resend_limit, trusted_proxies=context.settings.trusted_proxy_networks
    )


def get_csrf(context: ContextDep) -> Csrf:
    settings = context.settings
    return Csrf(settings.secret_key.get_secret_value(), secure_cookies=settings.cookies_secure)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegisterLimitDep = Annotated[ClientLimit, Depends(get_register_limit)]
ResendLimitDep = Annotated[ClientLimit, Depends(get_resend_limit)]
CsrfDep = Annotated[Csrf, Depends(get_csrf)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
