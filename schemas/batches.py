"""Batch API objects (OpenAI's fields first, then our extension fields)."""

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt

from schemas.requests import CostCap, Metadata, RequestBody

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]
EMBEDDINGS_ENDPOINT = "/v1/embeddings"  #: the endpoint whose inputs from many lines are packed into one upstream call
BATCH_ENDPOINTS: tuple[str, ...] = (
    "/v1/chat/completions", "/v1/completions", EMBEDDINGS_ENDPOINT, "/v1/responses", "/v1/moderations",
)
PRIORITY_CLASSES: dict[str, int] = {"urgent": 0, "high": 10, "normal": 20, "low": 30, "background": 40}
Route = Literal["auto", "realtime", "native_batch", "off_peak"]


class BatchError(BaseModel):
    code: str | None = None
    line: int | None = None
    message: str | None = None
    param: str | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError] = Field(default_factory=list)


class RequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int = 0


class OutputExpiresAfter(RequestBody):
    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(ge=3600, le=2_592_000)


class Constraints(RequestBody):
    regions: list[str] | None = None
    providers: list[str] | None = None


class RouteChoice(BaseModel):
    """Where one model's lines of a batch run, and how."""

    provider: str
    route: str  #: realtime, native_batch or off_peak
    not_before: float | None = None  #: off_peak: when the provider's cheaper window opens
    line_cost_usd: float | None = None  #: what a line was expected to cost on this route, when it was chosen


class BatchCreate(RequestBody):
    """Body of ``POST /v1/batches``; the last block is our extension, sent by the SDK via ``extra_body``."""

    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: Metadata = None
    output_expires_after: OutputExpiresAfter | None = None
    priority: StrictInt | str = "normal"
    not_before: int | None = None
    constraints: Constraints | None = None
    webhook_url: str | None = None
    max_cost_usd: CostCap = None
    route: Route = "auto"
    #: "strict": refuse (429) a batch whose window cannot be met at the current backlog; "flag": accept and flag it
    admission: Literal["flag", "strict"] = "flag"


class Batch(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    model: str | None = None
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    usage: BatchUsage | None = None
    metadata: dict[str, str] | None = None
    # --- extensions ---
    priority: str | int = "normal"
    not_before: int | None = None
    constraints: Constraints | None = None
    webhook_url: str | None = None
    max_cost_usd: float | None = None
    route: str = "auto"
    provider: str | None = None
    routes: dict[str, RouteChoice] | None = None  #: per model: the deployment and route chosen at validation
    cost_usd: float = 0.0  #: what the batch's lines have cost so far: usage x the price of the route taken
    estimated_completion_at: int | None = None  #: when the broker expects the batch done (at create, then live)
    at_risk: bool = False  #: the batch will miss its window at its current pace (it gets escalated)
    project_id: str | None = None  #: the project the batch belongs to (admin reads across projects show it)


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Batch]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class BatchRequestResponse(BaseModel):
    status_code: int
    request_id: str
    body: dict[str, Any]


class BatchRequestError(BaseModel):
    code: str
    message: str


class BatchOutputLine(BaseModel):
    """One line of an output or error file."""

    id: str
    custom_id: str
    response: BatchRequestResponse | None = None
    error: BatchRequestError | None = None
