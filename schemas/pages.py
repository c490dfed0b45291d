"""Cursor-paginated lists as OpenAI shapes them: ``{object: "list", data, first_id, last_id, has_more}``."""

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

Page = TypeVar("Page", bound=BaseModel)


def cursor_page(page_type: type[Page], data: Sequence[Any], has_more: bool) -> Page:
    """A page of objects that carry an ``id``; first and last ids are the cursors for the next request."""
    return page_type(data=list(data), first_id=data[0].id if data else None,
                     last_id=data[-1].id if data else None, has_more=has_more)
