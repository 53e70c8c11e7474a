"""The HTML and operator routes under arbitrary input, through a real uvicorn: whatever a
query string or a form carries (huge numbers, NULs, other alphabets, long or empty
values, forged tokens), the answer is a page or a 4xx, never a 5xx. Schemathesis covers
the JSON API from its OpenAPI document; these routes are not in it."""

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.helpers import csrf_token
from tests.support.ops import OPS_AUTH, OPS_PASSWORD

NASTY = st.sampled_from(
    [
        "",
        "0",
        "-1",
        "9223372036854775807",
        "9223372036854775808",
        "1" * 400,
        "1e309",
        "NaN",
        "\x00",
        "a\x00b",
        "<script>alert(1)</script>",
        "%00",
        "../../etc/passwd",
        "Ω" * 100,
        "x" * 5000,
        "ada@example.com",
        "a@b",
        "' OR 1=1 --",
    ]
)
VALUE = st.one_of(NASTY, st.text(max_size=300), st.integers().map(str))
NAMES = [
    "username",
    "email",
    "password",
    "token",
    "csrf_token",
    "job_id",
    "state",
    "kind",
    "login",
    "address",
]
FIELDS = st.dictionaries(
    st.sampled_from([*NAMES, "through", "before", "done", "count", "job", "suppression", "other"]),
    VALUE,
    max_size=6,
)
ROUTES = st.sampled_from(
    [
        ("GET", "/register"),
        ("POST", "/register"),
        ("GET", "/register/done"),
        ("GET", "/verify"),
        ("POST", "/verify"),
        ("GET", "/verify/resend"),
        ("POST", "/verify/resend"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("GET", "/account"),
        ("POST", "/logout"),
        ("GET", "/password/forgot"),
        ("POST", "/password/forgot"),
        ("GET", "/password/reset"),
        ("POST", "/password/reset"),
        ("GET", "/ops/jobs"),
        ("POST", "/ops/jobs/retry"),
        ("POST", "/ops/jobs/cancel"),
        ("POST", "/ops/suppressions/remove"),
    ]
)


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx.Client]:
    fuzzed = settings.model_copy(update={"ops_password": SecretStr(OPS_PASSWORD)})
    with AppProcess(fuzzed) as app, httpx.Client(base_url=app.url, timeout=30) as client:
        client.auth = OPS_AUTH
        yield client


@pytest.mark.slow
@pytest.mark.timeout(300)
@settings(
    max_examples=250,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=ROUTES, fields=FIELDS, real_token=st.booleans())
def test_html_routes_never_answer_5xx(
    http: httpx.Client, route: tuple[str, str], fields: dict[str, str], real_token: bool
) -> None:
    method, path = route
    if real_token and method == "POST":
        # A valid form token, so that the input reaches the handler behind the check.
        forms = {
            "/register": "/register",
            "/verify/resend": "/verify/resend",
            "/login": "/login",
            "/password/forgot": "/password/forgot",
        }
        form_page = forms.get(path, "/ops/jobs")
        page = http.get(form_page)
        if 'name="csrf_token"' in page.text:
            fields = {**fields, "csrf_token": csrf_token(page.text)}
    response = http.get(path, params=fields) if method == "GET" else http.post(path, data=fields)
    assert response.status_code < 500, (method, path, fields, response.text[:500])
