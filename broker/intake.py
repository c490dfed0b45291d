"""Validating a batch's input file and loading its lines, streamed line by line: both ways out of ``validating``.

A valid file becomes one ``line`` row per request (bulk-written) and the batch goes ``in_progress``; a file
with any bad line loads nothing and the batch goes ``failed`` with every bad line in ``errors.data`` (and its
``batch.failed`` webhook event). The API validates a batch as soon as it is created; the planner's tick
validates those nobody finished (``validate_stale``).
"""

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from broker.bulk import LineRow, insert_lines
from broker.catalogue import Catalogue
from broker.claims import claim, kept_alive
from broker.core import Core
from broker.errors import InvalidRequest
from broker.files import get_file
from broker.ids import new_id, now
from broker.model_access import MODEL_NOT_ALLOWED, may_use, not_allowed_message
from broker.projects import regions_of
from broker.routing import NATIVE_BATCH, RoutePlan, RoutingRequest, eligible, plan_model
from broker.tables import BatchRow, Project
from broker.webhooks.events import enqueue_batch_event
from schemas.batches import BatchError, Constraints

log = logging.getLogger(__name__)
INSERT_CHUNK_LINES = 10_000  #: rows written per bulk insert
ANALYZE_AFTER_LINES = 10_000  #: on PostgreSQL, a load this big refreshes the line table's planner statistics
ANALYZE_LOCK_TIMEOUT = "5s"  #: how long that refresh may wait for the table's lock before giving up
MAX_REPORTED_ERRORS = 10_000  #: bad lines listed in errors.data; a final entry counts the rest
VALIDATION_GRACE_SECONDS = 5  #: the API validates new batches itself; the planner steps in after this
MAX_CUSTOM_ID_CHARS = 512  #: longer custom_ids are refused (OpenAI states no limit; an index entry must fit a page)
MAX_MODEL_CHARS = 256  #: no served model has a longer name
SHOWN_CHARS = 80  #: a value quoted in an error message is cut to this many characters
MAX_BODY_DEPTH = 128  #: a request body nested deeper is refused (orjson writes at most 254 levels)


@dataclass(frozen=True, slots=True)
class ValidLine:
    custom_id: str
    body: str
    model: str
    plan: RoutePlan


class LineValidator:
    """Checks one input line against OpenAI's batch rules and our catalogue, and routes it (broker/routing.py)."""

    def __init__(self, endpoint: str, catalogue: Catalogue, routing: RoutingRequest | None = None,
                 project: Project | None = None) -> None:
        self.endpoint = endpoint
        self.catalogue = catalogue
        self.routing = routing or RoutingRequest(endpoint)
        self.project = project  #: whose model access applies (broker/model_access.py)
        self.seen: set[str] = set()
        self.plans: dict[str, RoutePlan | InvalidRequest] = {}  #: per model, decided on its first line

    def check(self, lineno: int, raw: bytes) -> ValidLine | BatchError:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return BatchError(code="invalid_json_line", line=lineno,
                              message="This line is not parseable as valid JSON.")
        if not isinstance(obj, dict):
            return BatchError(code="invalid_json_line", line=lineno,
                              message="Each line must be a JSON object.")
        try:
            return self._check_request(lineno, obj)
        except Exception as exc:  # a line we cannot judge is a bad line, never a stuck batch
            log.exception("validating line %d failed", lineno)
            return BatchError(code="invalid_request", line=lineno,
                              message=f"This line could not be validated ({type(exc).__name__}).")

    def _check_request(self, lineno: int, obj: dict[str, Any]) -> ValidLine | BatchError:
        custom_id = obj.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return _missing(lineno, "custom_id")
        if len(custom_id) > MAX_CUSTOM_ID_CHARS or "\x00" in custom_id:
            return BatchError(code="invalid_custom_id", line=lineno, param="custom_id",
                              message=f"The custom_id must be at most {MAX_CUSTOM_ID_CHARS} characters long and "
                              "hold no null characters.")
        if custom_id in self.seen:
            return BatchError(
                code="duplicate_custom_id", line=lineno, param="custom_id",
                message="The custom_id for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each request in a batch.",
            )
        self.seen.add(custom_id)
        if "method" not in obj:
            return _missing(lineno, "method")
        if obj["method"] != "POST":
            return BatchError(code="invalid_method", line=lineno, param="method",
                              message=f"The method must be 'POST', got {_shown(obj['method'])}.")
        if "url" not in obj:
            return _missing(lineno, "url")
        if obj["url"] != self.endpoint:
            return BatchError(
                code="invalid_url", line=lineno, param="url",
                message=f"The URL provided for this request ({_shown(obj['url'])}) does not match the batch "
                f"endpoint ({self.endpoint!r}).",
            )
        body = obj.get("body")
        if body is None:
            return _missing(lineno, "body")
        if not isinstance(body, dict):
            return BatchError(code="invalid_body", line=lineno, param="body",
                              message="The body of a request must be a JSON object.")
        if _deeper_than(body, MAX_BODY_DEPTH):
            return BatchError(code="invalid_body", line=lineno, param="body",
                              message=f"The body of a request may be nested at most {MAX_BODY_DEPTH} levels deep.")
        return self._check_model(lineno, custom_id, body)

    def _check_model(self, lineno: int, custom_id: str, body: dict[str, Any]) -> ValidLine | BatchError:
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            return BatchError(code="invalid_type", line=lineno, param="body.model",
                              message="The model must be a string.")
        if not model:
            return _missing(lineno, "body.model")
        if not may_use(self.project, model):
            return BatchError(code=MODEL_NOT_ALLOWED, line=lineno, param="body.model",
                              message=not_allowed_message(model))
        if len(model) > MAX_MODEL_CHARS:
            return BatchError(code="model_not_found", line=lineno, param="body.model",
                              message=f"The model {_shown(model)} is not served by this broker.")
        plan = self.plans.get(model)
        if plan is None:
            try:
                plan = plan_model(self.catalogue, model, body, self.routing)
            except InvalidRequest as exc:
                plan = exc
            self.plans[model] = plan
        if isinstance(plan, InvalidRequest):
            return BatchError(code=plan.code, line=lineno, param=plan.param, message=plan.message)
        return ValidLine(custom_id, orjson.dumps(body).decode(), model, plan)


def _shown(value: Any) -> str:
    """``value`` as quoted in an error message, cut short (a line's fields may be megabytes long)."""
    shown = repr(value)
    return shown if len(shown) <= SHOWN_CHARS else shown[:SHOWN_CHARS] + "…"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` levels deep (iteratively: no stack to blow)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _missing(lineno: int, param: str) -> BatchError:
    return BatchError(code="missing_required_parameter", line=lineno, param=param,
                      message=f"Missing required parameter: '{param}'.")


def _numbered_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    for lineno, raw in enumerate(lines, start=1):
        if raw.strip():
            yield lineno, raw


def validate_batch(core: Core, batch_id: str) -> None:
    """Run validation for a ``validating`` batch unless another process is already on it.

    Whatever goes wrong ends the batch ``failed`` with the reason in ``errors.data``, except an unreachable
    database: then the claim lapses and the planner tries again.
    """
    engine = core.engine
    if not claim(engine, batch_id, "validating"):
        return
    try:
        errors = _validate_claimed(core, batch_id)
    except OperationalError:
        raise
    except Exception as exc:
        log.exception("validating batch %s failed", batch_id)
        errors = [BatchError(code="validation_failed",
                             message=f"The input file could not be validated ({type(exc).__name__}).")]
    if errors:
        _fail(engine, batch_id, errors)


def _validate_claimed(core: Core, batch_id: str) -> list[BatchError]:
    engine = core.engine
    with Session(engine) as session:
        row = session.get(BatchRow, batch_id)
        assert row is not None
        source = get_file(session, row.project_id, row.input_file_id)
        endpoint = row.endpoint
        project = session.get(Project, row.project_id)
        routing = routing_request(row, project)
    with kept_alive(engine, batch_id):
        return load_lines(engine, batch_id, endpoint, core.store.lines(source.id), core.catalogue,
                          core.settings.max_batch_lines, routing, project)


def _fail(engine: Engine, batch_id: str, errors: list[BatchError]) -> None:
    """End a ``validating`` batch ``failed`` with ``errors`` (and its ``batch.failed`` event)."""
    errors_json = orjson.dumps({"object": "list", "data": [e.model_dump() for e in errors]}).decode()
    with engine.begin() as conn:
        failed = conn.execute(
            text("UPDATE batch SET status = 'failed', failed_at = :t, errors_json = :e, claimed_until = NULL "
                 "WHERE id = :id AND status = 'validating'"),
            {"t": now(), "e": errors_json, "id": batch_id},
        ).rowcount == 1
        if failed:
            enqueue_batch_event(conn, batch_id)
    log.info("batch %s failed validation with %d errors", batch_id, len(errors))


def validate_stale(core: Core) -> None:
    """Validate the batches still ``validating`` past the grace period that nobody holds (their validator died)."""
    t = now()
    with core.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(
            text("SELECT id FROM batch WHERE status = 'validating' AND created_at < :grace "
                 "AND (claimed_until IS NULL OR claimed_until < :now)"),
            {"grace": t - VALIDATION_GRACE_SECONDS, "now": t},
        )]
    for batch_id in ids:
        try:
            validate_batch(core, batch_id)
        except Exception:  # one batch's trouble never holds up the others or the planner's tick
            log.exception("validating batch %s failed; the planner tries again", batch_id)


def routing_request(row: BatchRow, project: Project | None) -> RoutingRequest:
    """The batch's routing needs: its own constraints, else its project's default regions."""
    constraints = Constraints.model_validate_json(row.constraints_json) if row.constraints_json else Constraints()
    regions = constraints.regions
    if regions is None and project is not None:
        regions = regions_of(project)
    return RoutingRequest(row.endpoint, row.route, regions, constraints.providers,
                          float(max(row.created_at, row.not_before or 0)), row.expires_at)


def load_lines(engine: Engine, batch_id: str, endpoint: str, source: Iterable[bytes], catalogue: Catalogue,
               max_lines: int, routing: RoutingRequest | None = None,
               project: Project | None = None) -> list[BatchError]:
    """Validate ``source`` and load its lines for ``batch_id`` in one transaction; returns the problems."""
    validator = LineValidator(endpoint, catalogue, routing, project)
    errors: list[BatchError] = []
    buffer: list[LineRow] = []
    count = 0
    first: ValidLine | None = None
    with engine.connect() as conn, conn.begin() as tx:
        for lineno, raw in _numbered_lines(source):
            result = validator.check(lineno, raw)
            if isinstance(result, BatchError):
                errors.append(result)
                continue
            count += 1
            first = first or result
            if errors:
                continue  # keep scanning for every bad line, but load nothing more
            plan = result.plan
            buffer.append((batch_id, lineno - 1, result.custom_id, result.body, plan.provider,
                           "batched" if plan.route == NATIVE_BATCH else "pending", 0, plan.not_before, 0, 0))
            if len(buffer) >= INSERT_CHUNK_LINES:
                insert_lines(conn, buffer)
                buffer.clear()
        errors.extend(_file_level_errors(count, len(errors), max_lines))
        if errors:
            tx.rollback()
            return _capped(errors)
        insert_lines(conn, buffer)
        assert first is not None
        output_file_id = new_id("file")
        plans = {m: p.to_json() for m, p in validator.plans.items() if isinstance(p, RoutePlan)}
        allowed = eligible(catalogue, validator.routing.regions, validator.routing.providers)
        started = conn.execute(
            text("UPDATE batch SET status = 'in_progress', in_progress_at = :t, total = :n, model = :model, "
                 "provider = :provider, output_file_id = :out, claimed_until = NULL, plan_json = :plan, "
                 "eligible_json = :eligible WHERE id = :id AND status = 'validating'"),
            {"t": now(), "n": count, "model": first.model, "provider": first.plan.provider, "id": batch_id,
             "out": output_file_id, "plan": orjson.dumps(plans).decode(),
             "eligible": None if allowed is None else orjson.dumps(allowed).decode()},
        ).rowcount
        if not started:  # cancelled while we validated: keep nothing
            tx.rollback()
            return []
        _announce_output_file(conn, batch_id, output_file_id)
    if count >= ANALYZE_AFTER_LINES and engine.dialect.name == "postgresql":
        _refresh_statistics(engine)
    return []


def _refresh_statistics(engine: Engine) -> None:
    """Tell PostgreSQL's planner about a big batch just loaded, instead of waiting for autovacuum.

    With stale statistics the planner thinks the new batch has a handful of pending lines, and claims them with a
    bitmap scan that reads and sorts every pending line of the batch (0.2 s per claim at 1M lines, on every tick
    and every worker refill) instead of walking ``ix_line_batch_status_idx`` for the first few (0.4 ms).
    Autovacuum may take a minute, or on a big table never (10% of it must change). Sampled, so about 0.1-0.2 s
    whatever the table's size; it waits at most ANALYZE_LOCK_TIMEOUT for another ANALYZE or VACUUM of the table.
    """
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = '{ANALYZE_LOCK_TIMEOUT}'"))
            conn.execute(text("ANALYZE line (batch_id, status, provider, idx, not_before)"))
            conn.commit()
    except Exception:  # the batch is loaded; fresher statistics are a nicety autovacuum will provide later
        log.exception("ANALYZE line after a bulk load failed")


def _announce_output_file(conn: Connection, batch_id: str, file_id: str) -> None:
    """The output file exists from the start, so results can be read while the batch runs."""
    conn.execute(
        text("INSERT INTO file (id, project_id, filename, purpose, bytes, created_at, expires_at, status, path) "
             "SELECT :f, project_id, :name, 'batch_output', 0, :t, :t + output_expires_after, 'uploaded', :f "
             "FROM batch WHERE id = :id"),
        {"f": file_id, "name": f"{batch_id}_output.jsonl", "t": now(), "id": batch_id},
    )


def _file_level_errors(valid: int, invalid: int, max_lines: int) -> list[BatchError]:
    if valid + invalid == 0:
        return [BatchError(code="empty_file", message="The input file is empty.")]
    if valid + invalid > max_lines:
        return [BatchError(code="too_many_tasks", param="input_file_id",
                           message=f"The input file has {valid + invalid} requests; the limit is {max_lines}.")]
    return []


def _capped(errors: list[BatchError]) -> list[BatchError]:
    if len(errors) <= MAX_REPORTED_ERRORS:
        return errors
    rest = len(errors) - MAX_REPORTED_ERRORS
    return [*errors[:MAX_REPORTED_ERRORS],
            BatchError(code="too_many_errors", message=f"{rest} more invalid lines are not listed.")]
