"""Dependencies as ``Annotated`` aliases; tenant scoping starts here (the caller's key, role and project)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlmodel import Session

from api.context import ApiContext
from broker.auth import ADMIN, DEFAULT_PROJECT, Caller, authenticate, get_or_create_project
from broker.db import session_scope
from broker.errors import Forbidden, NotFound, Unauthorized
from broker.projects import ARCHIVED
from broker.tables import Project

READS = frozenset({"GET", "HEAD", "OPTIONS"})  #: methods a read_only key (or an archived project) may use


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    with session_scope(ctx.core.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_caller(request: Request, ctx: ContextDep, session: SessionDep,
               authorization: Annotated[str | None, Header()] = None) -> Caller:
    ip = request.client.host if request.client else None
    if ctx.core.settings.auth_disabled:  # everything is open: an admin, on the default project unless told
        return Caller(None, ADMIN, "all", None, ip)
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
        )
    return authenticate(session, key.strip(), ip)


CallerDep = Annotated[Caller, Depends(get_caller)]


def get_project(request: Request, caller: CallerDep, session: SessionDep,
                openai_project: Annotated[str | None, Header(alias="OpenAI-Project")] = None) -> str:
    """The project a call acts on: a project key's own; an admin key's ``OpenAI-Project`` header, else the default
    project. A read_only key, or an admin on an archived project, may only read."""
    if caller.kind == ADMIN:
        project = session.get(Project, openai_project) if openai_project else \
            get_or_create_project(session, DEFAULT_PROJECT)
        if project is None:
            raise NotFound(f"No such project: {openai_project}", param="OpenAI-Project")
        if project.status == ARCHIVED and request.method not in READS:
            raise Forbidden(f"Project {project.id} is archived: its data can be read, not changed.",
                            code="project_archived")
        return project.id
    assert caller.project_id is not None
    if openai_project and openai_project != caller.project_id:
        raise Unauthorized("The OpenAI-Project header does not match the project of the API key.",
                           code="mismatched_project")
    if caller.scope == "read_only" and request.method not in READS:
        raise Forbidden("This API key is read_only: it cannot make changes.", code="insufficient_permissions")
    return caller.project_id


ProjectDep = Annotated[str, Depends(get_project)]


def get_project_briefly(request: Request, ctx: ContextDep, authorization: Annotated[str | None, Header()] = None,
                        openai_project: Annotated[str | None, Header(alias="OpenAI-Project")] = None) -> str:
    """The caller's project, from a session closed before the route runs: for routes that keep the request open
    long (uploads), so that a slow client never holds a database connection."""
    return project_and_key_briefly(request, ctx, authorization, openai_project)[0]


def project_and_key_briefly(request: Request, ctx: ApiContext, authorization: str | None,
                            openai_project: str | None) -> tuple[str, str | None]:
    """The caller's project and key id (None with authentication off), as :func:`get_project_briefly` reads them."""
    with session_scope(ctx.core.engine) as session:
        caller = get_caller(request, ctx, session, authorization)
        return get_project(request, caller, session, openai_project), caller.key_id


BriefProjectDep = Annotated[str, Depends(get_project_briefly)]

EVERY_PROJECT = "all"  #: ``project_id=all``: an admin key reads across every project


def get_scope(request: Request, caller: CallerDep, session: SessionDep,
              project_id: Annotated[str | None, Query(description=(
                  "Extension for reads across projects: admin keys may name any project, or `all` for every "
                  "project; without it, the project of the key (or of the OpenAI-Project header)."))] = None,
              openai_project: Annotated[str | None, Header(alias="OpenAI-Project")] = None) -> str | None:
    """The project a read covers, or None for every project (an admin's ``project_id=all``). A project key naming
    another project gets a 404, as for any object of another tenant."""
    if project_id is None:
        return get_project(request, caller, session, openai_project)
    if caller.kind == ADMIN:
        if project_id == EVERY_PROJECT:
            return None
        if session.get(Project, project_id) is None:
            raise NotFound(f"No such project: {project_id}", param="project_id")
        return project_id
    own = get_project(request, caller, session, openai_project)
    if project_id != own:
        raise NotFound(f"No such project: {project_id}", param="project_id")
    return own


ScopeDep = Annotated[str | None, Depends(get_scope)]


def require_admin(caller: CallerDep) -> Caller:
    if caller.kind != ADMIN:
        raise Forbidden("This endpoint needs an admin API key; a project key cannot use it.",
                        code="insufficient_permissions")
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]
