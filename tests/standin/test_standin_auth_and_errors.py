"""Bearer auth and bad requests: OpenAI's error shape, never a 500, never the key echoed."""

from __future__ import annotations

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from pytest_tria_deploy.standins.openai import create_app
from pytest_tria_deploy.standins.threaded import ThreadedStandin
from tests.reliability.secrets_canaries import assert_no_secret

WRONG_KEY = "sk-wrong-0000000000000000000000000"


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert {"message", "type", "code"} <= set(error)
    return error


def test_wrong_key_is_401_and_neither_key_is_echoed(standin: ThreadedStandin, api_key: str) -> None:
    with (
        OpenAI(base_url=standin.base_url, api_key=WRONG_KEY, max_retries=0) as sdk,
        pytest.raises(AuthenticationError) as raised,
    ):
        sdk.models.list()

    error = raised.value
    assert error.code == "invalid_api_key"
    assert_no_secret(
        {
            "the error message": error.message,
            "the error body": str(error.body),
            "the response body": error.response.text,
            "the response headers": str(error.response.headers),
        },
        {
            "the wrong key": WRONG_KEY,
            "the configured key": api_key,
            "the wrong key's prefix": "sk-wrong",
        },
    )


def test_missing_bearer_is_401(standin: ThreadedStandin) -> None:
    response = httpx.get(f"{standin.base_url}/models", timeout=5.0)
    basic = httpx.get(
        f"{standin.base_url}/models", headers={"Authorization": "Basic abc"}, timeout=5.0
    )

    assert response.status_code == 401
    assert _error(response)["code"] == "missing_api_key"
    assert basic.status_code == 401


def test_without_a_configured_key_any_bearer_is_accepted(
    keyless_standin: ThreadedStandin,
) -> None:
    with OpenAI(base_url=keyless_standin.base_url, api_key="anything", max_retries=0) as sdk:
        assert sdk.models.list().data
    empty = httpx.get(
        f"{keyless_standin.base_url}/models", headers={"Authorization": "Bearer"}, timeout=5.0
    )

    assert empty.status_code == 401


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "could not parse the JSON body"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "must be a JSON object"),
        (b'{"model": "gpt-4o-mini"}', "messages: Field required"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages: List should have at least 1"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}', "role"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "n": 0}', "n: Input"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], '
            b'"response_format": {"type": "json_schema"}}',
            "needs a 'json_schema' object",
        ),
    ],
)
def test_malformed_chat_bodies_are_400_in_openai_shape(
    standin: ThreadedStandin, api_key: str, content: bytes, problem: str
) -> None:
    response = httpx.post(
        f"{standin.base_url}/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        timeout=5.0,
    )

    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert problem in str(error["message"])


def test_unknown_route_and_method_use_the_openai_error_shape(
    standin: ThreadedStandin, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    missing = httpx.get(f"{standin.base_url}/assistants", headers=headers, timeout=5.0)
    wrong_method = httpx.get(f"{standin.base_url}/chat/completions", headers=headers, timeout=5.0)

    assert missing.status_code == 404
    assert "/v1/assistants" in str(_error(missing)["message"])
    assert wrong_method.status_code == 405
    _error(wrong_method)


def test_admin_routes_need_no_openai_key(standin: ThreadedStandin) -> None:
    response = httpx.get(f"{standin.url}/_admin/stats", timeout=5.0)

    assert response.status_code == 200
    assert response.json()["total"] == 0


@pytest.mark.parametrize(("allow_remote", "status"), [(False, 403), (True, 200)])
async def test_admin_routes_refuse_non_loopback_clients_unless_allowed(
    allow_remote: bool, status: int
) -> None:
    # A remote peer address cannot be produced over loopback HTTP, so this drives the ASGI app
    # directly with the peer address a remote client would have.
    app = create_app("sk-x", allow_remote_admin=allow_remote)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as remote:
        response = await remote.get("/_admin/stats")

    assert response.status_code == status
