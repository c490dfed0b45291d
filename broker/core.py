"""The Core: what every broker process shares, built once by the composition root (cli/compose.py) and passed
down to the API, the planner, the schedules and the workers instead of its four parts."""

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from broker.catalogue import Catalogue, demo_catalogue, load_catalogue
from broker.db import make_engine
from broker.files import FileStore
from broker.migrate import upgrade
from broker.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Core:
    """Settings, database (migrated), provider catalogue and file store."""

    settings: Settings
    engine: Engine
    catalogue: Catalogue
    store: FileStore

    @classmethod
    def open(cls, settings: Settings, catalogue: Catalogue | None = None, migrate: bool = True) -> "Core":
        """Connect (and migrate) the database; the catalogue is ``catalogue``, else the settings' providers file,
        else the demo provider on the simulator's port."""
        engine = make_engine(settings.database_url)
        if migrate:
            upgrade(engine)
        if catalogue is None:
            catalogue = (load_catalogue(settings.providers_file) if settings.providers_file
                         else demo_catalogue(f"http://127.0.0.1:{settings.simulator_port}/v1"))
        for env, providers in catalogue.unset_key_envs().items():
            log.warning("%s is not set: provider %s will be called without an API key, so its lines will likely "
                        "fail (401)", env, ", ".join(providers))
        return cls(settings, engine, catalogue, FileStore(settings.files_dir))
