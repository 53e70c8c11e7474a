"""/metrics is the operator's: with METRICS_TOKEN it needs that bearer token; without one
it is served in development only. Its figures would otherwise tell a stranger whether an
address is registered (enumeration-safe mode moves `owner_notified`, not `created`)."""

import httpx
import pytest
from pydantic import SecretStr

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import user_json
from tests.support.settings import METRICS_TOKEN


async def test_without_the_token_the_figures_are_not_shown(client: httpx.AsyncClient) -> None:
    for headers in [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": "Bearer"},
    ]:
        response = await client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "welcome_mail_" not in response.text


async def test_the_token_opens_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert "welcome_mail_registrations_total" in response.text


@pytest.mark.parametrize("environment", ["production", "test"])
async def test_without_a_token_set_it_is_absent_outside_development(
    settings: Settings, environment: str
) -> None:
    no_token = settings.model_copy(
        update={"metrics_token": SecretStr(""), "environment": environment}
    )
    async with app_client(no_token) as client:
        assert (await client.post("/api/register", json=user_json("ada"))).status_code == 201
        response = await client.get("/metrics")
    assert response.status_code == 404
    assert "welcome_mail_" not in response.text


async def test_without_a_token_development_serves_it(settings: Settings) -> None:
    development = settings.model_copy(
        update={"metrics_token": SecretStr(""), "environment": "development"}
    )
    async with app_client(development) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "welcome_mail_registrations_total" in response.text
