"""The app in-process with its lifespan, behind an httpx client (the `client` fixture of
tests/conftest.py, and the tests that need their own)."""

from collections.abc import Awaitable, Callable

import httpx

from backend.main import create_app
from backend.settings import Settings


def app_client(
    settings: Settings, *, base_url: str = "http://testserver", wait_for_background: bool = True
) -> "AppClient":
    """`async with app_client(settings) as client:` the app in-process with its lifespan.

    wait_for_background=True: every response waits for all background work in flight
    (`runner.wait_idle()`) before it reaches the test. False: the test sees what a real
    client sees, the response first and the work after.
    """
    return AppClient(settings, base_url=base_url, wait_for_background=wait_for_background)


class AppClient:
    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str = "http://testserver",
        wait_for_background: bool = True,
    ) -> None:
        self.base_url = base_url
        self.wait_for_background = wait_for_background
        self.app = create_app(settings)
        self._lifespan = self.app.router.lifespan_context(self.app)

    async def __aenter__(self) -> httpx.AsyncClient:
        await self._lifespan.__aenter__()
        self._client = self.new_client()
        return self._client

    def new_client(self, address: tuple[str, int] = ("127.0.0.1", 123)) -> httpx.AsyncClient:
        """Another client of the running app, seen by it as coming from `address`
        (`request.client`). The caller closes it, before the AppClient exits."""
        hooks: dict[str, list[Callable[[httpx.Response], Awaitable[None]]]] = {"response": []}
        if self.wait_for_background:
            hooks["response"].append(self._background_work_done)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=address),
            base_url=self.base_url,
            event_hooks=hooks,
        )

    async def _background_work_done(self, response: httpx.Response) -> None:
        # The app answers before its background work is done (as in production).
        await self.app.state.context.runner.wait_idle()

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)
