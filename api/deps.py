"""Dependencies as ``Annotated`` aliases; tenant scoping starts here (the caller's project)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel import Session

from api.context import ApiContext
from broker.auth import DEFAULT_PROJECT, get_or_create_project, project_for_key
from broker.db import session_scope
from broker.errors import Unauthorized


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    with session_scope(ctx.core.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_project(ctx: ContextDep, session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> str:
    if ctx.core.settings.auth_disabled:
        return get_or_create_project(session, DEFAULT_PROJECT).id
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
        )
    return project_for_key(session, key.strip())


ProjectDep = Annotated[str, Depends(get_project)]


def get_project_briefly(ctx: ContextDep, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller's project, from a session closed before the route runs: for routes that keep the request open
    long (uploads), so that a slow client never holds a database connection."""
    with session_scope(ctx.core.engine) as session:
        return get_project(ctx, session, authorization)


BriefProjectDep = Annotated[str, Depends(get_project_briefly)]
