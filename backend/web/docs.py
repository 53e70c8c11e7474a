"""/docs: Swagger UI under a Content-Security-Policy without 'unsafe-inline'.

FastAPI's own /docs page starts Swagger UI with an inline script, which the app's CSP
refuses. This page is the same Swagger UI, started by a static file instead
(`static/api-docs.js`), with a policy of its own: scripts from this site and from the
pinned Swagger UI release on jsDelivr only, styles from that release only, requests only
to this site. Both files from the CDN carry Subresource Integrity hashes, so a changed
file is refused rather than run (tests/test_api_docs.py checks them against the npm
package of the same version). /redoc is not served: ReDoc injects <style> elements at
run time, which no CSP without 'unsafe-inline' allows.
"""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.35.0"
CDN = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}"
# sha384 of the files of swagger-ui-dist@SWAGGER_UI_VERSION, as npm publishes them.
SWAGGER_UI_JS = "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
SWAGGER_UI_CSS = "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"

DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"script-src 'self' {CDN}/",
        f"style-src {CDN}/",
        # Swagger UI's icons are data: URIs in its stylesheet.
        "img-src 'self' data:",
        # The OpenAPI document, and "Try it out".
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>API docs · Welcome mail</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{CDN}/swagger-ui.css"
        integrity="{SWAGGER_UI_CSS}" crossorigin="anonymous">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{{openapi_url}}"></div>
  <script src="{CDN}/swagger-ui-bundle.js"
          integrity="{SWAGGER_UI_JS}" crossorigin="anonymous"></script>
  <script src="/static/api-docs.js"></script>
</body>
</html>
"""


def docs_router(*, openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page = _PAGE.format(openapi_url=openapi_url)

    @router.get("/docs", response_class=HTMLResponse)
    async def swagger_ui() -> HTMLResponse:
        # The security headers middleware adds only what a response lacks: this policy stays.
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY})

    return router
