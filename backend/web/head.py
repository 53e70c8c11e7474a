"""`HEAD` wherever `GET` works: the GET route answers, and its body is dropped.

Starlette adds HEAD to a plain Route with GET, but FastAPI's routes take only the methods
they declare, so `HEAD /healthz` was a 405, and some load balancers probe with HEAD. The
headers (Content-Length included) are the GET's, as RFC 9110 §9.3.2 asks.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)
