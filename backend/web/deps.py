"""Request dependencies, as `Annotated` aliases so handlers read like their signature."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from backend.context import TEMPLATES_DIR, AppContext
from backend.settings import Settings
from backend.web.ratelimit import RegistrationLimiter

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


def get_limiter(request: Request) -> RegistrationLimiter:
    limiter: RegistrationLimiter = request.app.state.registration_limiter
    return limiter


SettingsDep = Annotated[Settings, Depends(get_settings)]
LimiterDep = Annotated[RegistrationLimiter, Depends(get_limiter)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
