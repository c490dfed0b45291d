"""A stored-file schedule's input checked at create, line by line as each run's validation will: a file that can
never run (a model the catalogue lacks, a bad line) is refused then, not discovered at every run."""

from dataclasses import replace
from pathlib import Path

from sqlmodel import Session

from broker.catalogue import Catalogue
from broker.errors import InvalidRequest
from broker.intake import LineValidator, routing_request
from broker.tables import BatchRow, Project
from schemas.batches import BatchError


def check_input_lines(session: Session, catalogue: Catalogue, source: Path, probe: BatchRow) -> None:
    """400 naming the first line that each run's validation would refuse, and how many more it would."""
    # route "auto": whether a native batch or an off-peak window fits depends on when a run starts, which the
    # run's own validation decides; a model nobody serves (under the batch's constraints) never runs
    routing = replace(routing_request(probe, session.get(Project, probe.project_id)), route="auto")
    validator = LineValidator(probe.endpoint, catalogue, routing)
    errors: list[BatchError] = []
    seen = 0
    with source.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if raw.strip():
                seen += 1
                if isinstance(result := validator.check(lineno, raw), BatchError):
                    errors.append(result)
    if seen == 0:
        raise InvalidRequest("The schedule's input file has no lines.", param="input_file_id", code="empty_file")
    if errors:
        first = errors[0]
        more = f" ({len(errors) - 1} more lines would fail too)" if len(errors) > 1 else ""
        raise InvalidRequest(f"Every run of this schedule would fail validation: line {first.line}: {first.message}"
                             f"{more}", param="input_file_id", code=first.code)
