"""OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_envelope(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, object]:
    """OpenAI's error body as a plain dict (for JSON answers and stored upstream bodies alike)."""
    return ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code)).model_dump()
