"""Rate limits per project and model (OpenAI's project rate limits): requests and tokens per minute that one
project may use of a model, whichever providers serve it, so that one project cannot take a shared provider whole.

Workers hold them in the shared limiter next to the providers' limits (providers/throttle.py); this module reads
and writes their configuration.
"""

from sqlalchemy import Engine, bindparam, text
from sqlmodel import Session, col, select

from broker.audit import Actor, record
from broker.errors import NotFound
from broker.tables import ProjectRateLimit

RATE_LIMIT_ID_PREFIX = "rl-"  #: a limit's id is this prefix and the model's name, as OpenAI spells them


def rate_limit_id(model: str) -> str:
    return RATE_LIMIT_ID_PREFIX + model


def model_of(limit_id: str, models: list[str]) -> str:
    """The model a rate limit id names; 404 unless the catalogue serves it."""
    model = limit_id.removeprefix(RATE_LIMIT_ID_PREFIX)
    if not limit_id.startswith(RATE_LIMIT_ID_PREFIX) or model not in models:
        raise NotFound(f"No such rate limit: {limit_id}", param="rate_limit_id")
    return model


def limits_of(session: Session, project_id: str) -> dict[str, ProjectRateLimit]:
    rows = session.exec(select(ProjectRateLimit).where(col(ProjectRateLimit.project_id) == project_id))
    return {r.model: r for r in rows}


def set_limit(session: Session, actor: Actor, project_id: str, model: str, rpm: int | None,
              tpm: int | None) -> ProjectRateLimit:
    """Set (None: remove) the project's requests and tokens per minute on ``model``."""
    row = session.get(ProjectRateLimit, (project_id, model)) or ProjectRateLimit(project_id=project_id, model=model)
    row.rpm, row.tpm = rpm, tpm
    if rpm is None and tpm is None:
        if row in session:
            session.delete(row)
    else:
        session.add(row)
    record(session, actor, "rate_limit.updated", project_id=project_id, object_id=rate_limit_id(model),
           details={"changes_requested": {"max_requests_per_1_minute": rpm, "max_tokens_per_1_minute": tpm}})
    return row


def all_limits(engine: Engine) -> dict[tuple[str, str], tuple[int | None, int | None]]:
    """Every project's limits, by (project id, model): what a worker holds lines to."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT project_id, model, rpm, tpm FROM project_rate_limit")).all()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def projects_of(engine: Engine, batch_ids: list[str]) -> dict[str, str]:
    """The project of each batch."""
    if not batch_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, project_id FROM batch WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)), {"ids": batch_ids}).all()
    return {r[0]: r[1] for r in rows}
