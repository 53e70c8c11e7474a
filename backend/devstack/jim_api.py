"""MailHog's Jim API on the inbox's HTTP port: ``/api/v2/jim``, as MailHog v1.0.1 serves it.

- ``GET``: 200 and Jim's settings while he is on (plus our ``Faults``); 404 while off.
- ``POST``: turns him on, 201. Without a body: MailHog's defaults, or, as in MailHog,
  the settings last sent in a body. 400 when he is already on.
- ``PUT``: replaces his settings (the body is read as for POST, but is required); 200, or
  404 while he is off.
- ``DELETE``: turns him off, 200; 404 while off.

Beside it, for the web UI (which polls, and shouldn't log a 404 every few seconds):
``GET /api/dev/jim`` is always 200, ``{"enabled": false, "settings": null}`` or
``{"enabled": true, "settings": <what GET /api/v2/jim returns>}``.

How a body is read (fields left out are 0, as in MailHog; a body with ``Faults`` starts
from no random faults) is in ``jim_config``. Unlike MailHog, a malformed body is a 400
for POST too, with a JSON ``{"error": ...}`` saying what is wrong. Changing or turning
off Jim ends every hang and link-speed limit in progress.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend.devstack.jim import Jim
from backend.devstack.jim_config import JimConfigError, parse_body

PATH = "/api/v2/jim"
DEV_PATH = "/api/dev/jim"


def jim_routes(jim: Jim) -> list[Route]:
    async def show(request: Request) -> Response:
        if not jim.enabled:
            return _error(404, "Jim is off; POST to turn him on")
        return JSONResponse(jim.as_json())

    async def turn_on(request: Request) -> Response:
        if jim.enabled:
            return _error(400, "Jim is already on; PUT changes his settings")
        try:
            config = parse_body(await request.body(), remembered=jim.remembered, required=False)
        except JimConfigError as exc:
            return _error(400, str(exc))
        jim.remembered = config.chances
        jim.turn_on(config)
        return Response(status_code=201)

    async def change(request: Request) -> Response:
        if not jim.enabled:
            return _error(404, "Jim is off; POST to turn him on")
        try:
            config = parse_body(await request.body(), remembered=jim.remembered, required=True)
        except JimConfigError as exc:
            return _error(400, str(exc))
        jim.remembered = config.chances
        jim.change(config)
        return Response(status_code=200)

    async def turn_off(request: Request) -> Response:
        if not jim.enabled:
            return _error(404, "Jim is already off")
        jim.turn_off()
        return Response(status_code=200)

    async def state(request: Request) -> Response:
        return JSONResponse(
            {"enabled": jim.enabled, "settings": jim.as_json() if jim.enabled else None}
        )

    return [
        Route(DEV_PATH, state, methods=["GET"]),
        Route(PATH, show, methods=["GET"]),
        Route(PATH, turn_on, methods=["POST"]),
        Route(PATH, change, methods=["PUT"]),
        Route(PATH, turn_off, methods=["DELETE"]),
    ]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
