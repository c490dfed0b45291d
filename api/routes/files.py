"""``/v1/files``: upload, list, retrieve, content, delete (OpenAI's Files API)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from sqlmodel import col

from api.deps import BriefProjectDep, ContextDep, ProjectDep, SessionDep
from api.openapi import errors
from api.upload import receive_upload
from broker.access import page
from broker.batches import RUNNING, batch_of_output_file
from broker.db import session_scope
from broker.errors import InvalidRequest
from broker.files import get_file, record_file, to_wire
from broker.ids import new_id
from broker.result_lines import iter_lines
from broker.tables import StoredFile
from schemas.files import UPLOADABLE_PURPOSES, FileDeleted, FileList, FileObject
from schemas.pages import cursor_page

router = APIRouter(prefix="/v1/files", tags=["files"])
MAX_LIST_LIMIT = 10_000  #: as OpenAI
PARTIAL_PAGE_LINES = 10_000  #: lines per read of a running batch's output; resume with ?offset=
#: the upload's multipart body, for the OpenAPI document (the route parses the stream itself: api/upload.py)
UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "purpose"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "The file (JSONL for purpose batch)."},
        "purpose": {"type": "string", "enum": sorted(UPLOADABLE_PURPOSES)},
        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
        "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2_592_000,
                                   "description": "Batch files default to 30 days."}}}}}}


def _expires_after(fields: dict[str, str], default: int | None) -> int | None:
    seconds = fields.get("expires_after[seconds]")
    if seconds is None:
        return default
    if fields.get("expires_after[anchor]", "created_at") != "created_at":
        raise InvalidRequest("expires_after.anchor must be 'created_at'.", param="expires_after.anchor")
    if not seconds.isdigit() or not 3600 <= int(seconds) <= 2_592_000:
        raise InvalidRequest("expires_after.seconds must be between 3600 and 2592000.",
                             param="expires_after.seconds")
    return int(seconds)


@router.post("", response_model=FileObject, responses=errors(413), openapi_extra={"requestBody": UPLOAD_BODY})
async def create_file(request: Request, ctx: ContextDep, project_id: BriefProjectDep) -> FileObject:
    """The bytes stream to the store first, with no database connection held; the row is written once they are in."""
    store, file_id = ctx.core.store, new_id("file")
    try:
        upload = await receive_upload(request, store, file_id, ctx.core.settings.max_upload_bytes)
        purpose = upload.fields.get("purpose")
        if not purpose:
            raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in UPLOADABLE_PURPOSES:
            raise InvalidRequest(f"Invalid purpose '{purpose}'. Use one of: {', '.join(sorted(UPLOADABLE_PURPOSES))}.",
                                 param="purpose")
        expires_after = _expires_after(
            upload.fields, ctx.core.settings.batch_file_expires_after if purpose == "batch" else None)
    except BaseException:
        await run_in_threadpool(store.remove, file_id)
        raise

    def record() -> FileObject:
        with session_scope(ctx.core.engine) as session:
            return to_wire(record_file(session, file_id=file_id, size=upload.size, project_id=project_id,
                                       filename=upload.filename or "upload", purpose=purpose,
                                       expires_after=expires_after))

    return await run_in_threadpool(record)


@router.get("", response_model=FileList)
def list_files(
    project_id: ProjectDep, session: SessionDep, after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = MAX_LIST_LIMIT,
    order: Literal["asc", "desc"] = "desc", purpose: str | None = None,
) -> FileList:
    filters = [col(StoredFile.project_id) == project_id]
    if purpose:
        filters.append(col(StoredFile.purpose) == purpose)
    rows, has_more = page(session, StoredFile, *filters, after=after, limit=limit, order=order)
    data = [to_wire(r) for r in rows]
    return cursor_page(FileList, data, has_more)


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, project_id: ProjectDep, session: SessionDep) -> FileObject:
    return to_wire(get_file(session, project_id, file_id))


@router.get("/{file_id}/content")
def file_content(
    file_id: str, ctx: ContextDep, project_id: ProjectDep, session: SessionDep,
    offset: Annotated[int, Query(ge=0, description="Lines to skip (extension), to resume reading.")] = 0,
) -> Response:
    """The file's bytes. A running batch's output file answers with the lines so far (extension headers
    ``x-file-complete`` and ``x-last-line`` say whether more will come and where to resume)."""
    row = get_file(session, project_id, file_id)
    batch = batch_of_output_file(session, row.id)
    if batch is not None and batch.status in RUNNING:
        lines = list(iter_lines(session.connection(), batch.id, True, offset, PARTIAL_PAGE_LINES))
        return Response(b"".join(lines), media_type="application/octet-stream",
                        headers={"x-file-complete": "false", "x-last-line": str(offset + len(lines)),
                                 "x-batch-status": batch.status})
    headers = {"x-file-complete": "true"}
    if batch is not None:
        headers["x-last-line"] = str(batch.completed)
    if offset == 0:
        headers["content-length"] = str(row.bytes)
    return StreamingResponse(ctx.core.store.stream_from_line(row.id, offset), media_type="application/octet-stream",
                             headers=headers)


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, ctx: ContextDep, project_id: ProjectDep, session: SessionDep) -> FileDeleted:
    row = get_file(session, project_id, file_id)
    session.delete(row)
    session.commit()
    ctx.core.store.remove(row.id)
    return FileDeleted(id=file_id)
