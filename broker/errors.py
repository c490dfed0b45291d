"""The broker's error tree.

BrokerError
 +-- ApiError                 shown to API callers as OpenAI's ``{"error": {...}}`` envelope
 |    +-- InvalidRequest      400 invalid_request_error
 |    +-- Unauthorized        401 invalid_request_error (OpenAI's type for a missing or wrong key)
 |    +-- Forbidden           403 invalid_request_error (a key without the role or scope for the call)
 |    +-- NotFound            404 invalid_request_error
 |    +-- Conflict            409 invalid_request_error
 |    +-- PayloadTooLarge     413 invalid_request_error
 |    +-- RateLimited         429 rate_limit_error (strict admission: the window cannot be met)
 |    |    +-- ProviderBusy    429 rate_limit_error with Retry-After (no capacity for an interactive call in time)
 |    +-- QuotaExceeded       429 insufficient_quota (the project's budget is spent)
 +-- UnsafeTarget            a webhook URL the broker refuses to call (broker/webhooks/ssrf.py)
 +-- UpstreamError           a provider call went wrong
      +-- RetryableUpstream   429, 5xx, timeouts, dropped connections: try again after ``delay``
      +-- TerminalUpstream    any other 4xx: the line fails with the upstream's status and body
"""


class BrokerError(Exception):
    """Root of every error the broker raises on purpose."""


class ApiError(BrokerError):
    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class InvalidRequest(ApiError):
    pass


class Unauthorized(ApiError):
    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class RateLimited(ApiError):
    status_code = 429
    error_type = "rate_limit_error"


class UpstreamError(BrokerError):
    """A provider call failed; ``status``/``body`` are set when the provider answered over HTTP."""

    def __init__(
        self, message: str, *, code: str, status: int | None = None, body: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.body = body
        self.request_id = request_id


class RetryableUpstream(UpstreamError):
    def __init__(
        self, message: str, *, code: str, status: int | None = None, body: str | None = None,
        request_id: str | None = None, delay: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, body=body, request_id=request_id)
        self.delay = delay  #: seconds the provider asked us to wait (Retry-After), if it said


class TerminalUpstream(UpstreamError):
    pass


class QuotaExceeded(ApiError):
    """429 insufficient_quota: the project's budget is spent (OpenAI's answer when an account's quota is)."""

    status_code = 429
    error_type = "insufficient_quota"


class ProviderBusy(RateLimited):
    """Every deployment was full for as long as an interactive call may wait."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after = retry_after  #: seconds after which capacity is expected
