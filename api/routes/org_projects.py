"""``/v1/organization/projects`` (OpenAI's Administration API): create, list, retrieve, modify, archive.

Admin keys only. Our extensions on the project object: monthly budget, default regions and model access.
"""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminDep, SessionDep
from broker import projects as service
from schemas.admin import Project, ProjectCreate, ProjectList, ProjectUpdate
from schemas.pages import cursor_page

router = APIRouter(prefix="/v1/organization/projects", tags=["organization"])


@router.post("", response_model=Project)
def create_project(body: ProjectCreate, admin: AdminDep, session: SessionDep) -> Project:
    row = service.create_project(session, body, admin.actor)
    session.commit()
    return service.to_wire(session, row)


@router.get("", response_model=ProjectList)
def list_projects(_: AdminDep, session: SessionDep, after: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=100)] = 20, include_archived: bool = False) -> ProjectList:
    rows, has_more = service.list_projects(session, after, limit, include_archived)
    return cursor_page(ProjectList, [service.to_wire(session, r) for r in rows], has_more)


@router.get("/{project_id}", response_model=Project)
def retrieve_project(project_id: str, _: AdminDep, session: SessionDep) -> Project:
    return service.to_wire(session, service.get_project(session, project_id))


@router.post("/{project_id}", response_model=Project)
def modify_project(project_id: str, body: ProjectUpdate, admin: AdminDep, session: SessionDep) -> Project:
    """Rename, and set or clear (``null``) the monthly budget, default regions and model lists."""
    row = service.update_project(session, project_id, body, admin.actor)
    session.commit()
    return service.to_wire(session, row)


@router.post("/{project_id}/archive", response_model=Project)
def archive_project(project_id: str, admin: AdminDep, session: SessionDep) -> Project:
    """Its keys stop working at once; its files and batches stay readable with an admin key."""
    row = service.archive_project(session, project_id, admin.actor)
    session.commit()
    return service.to_wire(session, row)
