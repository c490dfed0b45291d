"""What the API needs from its process: settings, database, catalogue, file store and two hooks."""

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from broker.catalogue import Catalogue
from broker.files import FileStore
from broker.settings import Settings


def _nothing() -> None:
    return None


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    catalogue: Catalogue
    store: FileStore
    #: called after a batch was created or changed, so an in-process planner can tick at once
    wake_planner: Callable[[], None] = field(default=_nothing)
