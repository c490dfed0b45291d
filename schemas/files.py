"""Files API objects, shaped exactly as OpenAI's."""

from typing import Literal

from pydantic import BaseModel

FilePurpose = Literal[
    "assistants", "assistants_output", "batch", "batch_output", "fine-tune", "fine-tune-results",
    "vision", "user_data", "evals",
]
UPLOADABLE_PURPOSES: frozenset[str] = frozenset(
    {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
)


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"  #: "uploaded" | "processed" | "error"
    expires_at: int | None = None
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
