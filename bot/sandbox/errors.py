"""Errors of the sandbox: Bot API errors (sent to the bot) and misuse of the Python API."""

from __future__ import annotations

from typing import Any

_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def status_phrase(status: int) -> str:
    """The short phrase Telegram puts in front of error descriptions ("Bad Request", ...)."""
    return _PHRASES.get(status, "Error")


class ApiError(Exception):
    """A Bot API call failed; becomes `{"ok": false, "error_code": ..., ...}`."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    """400 `Bad Request: {detail}`."""
    return ApiError(400, f"Bad Request: {detail}")


def forbidden(detail: str) -> ApiError:
    """403 `Forbidden: {detail}`."""
    return ApiError(403, f"Forbidden: {detail}")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


class SandboxError(Exception):
    """The sandbox's Python/HTTP user API was used wrongly (unknown bot, absent button, ...)."""


class SandboxNotFound(SandboxError, LookupError):
    """No such bot, user, chat or file in the sandbox."""


class SandboxTimeout(SandboxError, TimeoutError):
    """A `wait_for...` helper gave up before its condition held."""
