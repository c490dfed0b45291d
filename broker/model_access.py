"""Which public model names a project may use: one rule for ``/v1/models``, batch lines, schedules and real-time calls.

A project has an optional allow list (None: every model) and a block list; a blocked name is refused even when
the allow list names it.
"""

import orjson

from broker.tables import Project

MODEL_NOT_ALLOWED = "model_not_allowed"  #: the error code a refused model gets, in batch errors and API errors


def allowed_models(project: Project) -> list[str] | None:
    return orjson.loads(project.models_allowed_json) if project.models_allowed_json else None


def blocked_models(project: Project) -> list[str]:
    return orjson.loads(project.models_blocked_json) if project.models_blocked_json else []


def may_use(project: Project | None, model: str) -> bool:
    """Whether ``project`` may call ``model`` (no project: authentication is off, everything is allowed)."""
    if project is None:
        return True
    return permits(allowed_models(project), blocked_models(project), model)


def permits(allowed: list[str] | None, blocked: list[str], model: str) -> bool:
    """The rule itself, on a project's lists as read (None: no allow list)."""
    return (allowed is None or model in allowed) and model not in blocked


def not_allowed_message(model: str) -> str:
    return f"This project may not use the model '{model}'."


def set_model_access(project: Project, allowed: list[str] | None, blocked: list[str] | None) -> None:
    """Replace both lists (None: no allow list / nothing blocked)."""
    project.models_allowed_json = orjson.dumps(sorted(set(allowed))).decode() if allowed is not None else None
    project.models_blocked_json = orjson.dumps(sorted(set(blocked))).decode() if blocked else None

