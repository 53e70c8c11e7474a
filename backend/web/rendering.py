"""The pages' templates, and the one way a page with a form is rendered: with the CSRF
token its form must send back, and the cookie that token is checked against when the
browser has none yet. Every form page (registration, resend, the operator page) and the
429 answer that shows a form again (backend/main.py) go through `render_form`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Request, status
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from backend.accounts.mail_status import when
from backend.context import TEMPLATES_DIR
from backend.web.csrf import Csrf

templates = Jinja2Templates(directory=TEMPLATES_DIR / "pages")
# A time as the pages show it: `{{ moment | utc }}`.
templates.env.filters["utc"] = when


@dataclass(frozen=True)
class FormPage:
    """A page with a form: its template and what the template shows, the CSRF token
    aside (added when rendered)."""

    template: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def with_error(self, message: str) -> "FormPage":
        """The same page with a message above the form (`form_error` in the template)."""
        return replace(self, values={**self.values, "form_error": message})


def render_form(
    request: Request,
    csrf: Csrf,
    page: FormPage,
    *,
    status_code: int = status.HTTP_200_OK,
    headers: Mapping[str, str] | None = None,
) -> Response:
    token, new_cookie = csrf.issue(request, form=page.template)
    response = templates.TemplateResponse(
        request,
        page.template,
        {**page.values, "csrf_token": token},
        status_code=status_code,
        headers=headers,
    )
    if new_cookie:
        csrf.set_cookie(response, new_cookie)
    return response
