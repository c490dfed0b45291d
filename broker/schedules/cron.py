"""Cron expressions in an IANA time zone: validation and the next run time (``croniter`` does the matching).

An expression has five fields (minute hour day month weekday) or six, the sixth counting seconds, as croniter
reads them; ``@daily``-style names work too. Times are matched on the zone's wall clock, the way cron does on
a host set to that zone: across a DST change, a fixed-hour run that falls in the skipped hour runs when the
clock jumps, and one that falls in the repeated hour runs once (the first time); runs on every hour follow
real time through both changes.
"""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from broker.errors import InvalidRequest

CRON_FIELDS = (5, 6)  #: minute hour day month weekday, and an optional sixth field for seconds
MAX_REPEATS_SKIPPED = 4_000  #: candidates passed over in a repeated (DST) hour before giving up: a second-level cron


def check_cron(expression: str) -> str:
    """The expression with its fields single-spaced; 400 (param ``cron``) unless croniter can run it."""
    fields = expression.split()
    normal = " ".join(fields)
    keyword = len(fields) == 1 and normal.startswith("@")
    if not (keyword or len(fields) in CRON_FIELDS) or not croniter.is_valid(normal):
        raise InvalidRequest(
            f"Invalid cron expression '{expression}': use five fields (minute hour day month weekday), "
            "an optional sixth for seconds, or a name such as @daily.", param="cron")
    return normal


def check_timezone(name: str) -> str:
    """The IANA zone name as given; 400 (param ``timezone``) when this host's zone database lacks it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"Unknown time zone '{name}': use an IANA name such as 'UTC' or 'Europe/Paris'.",
                             param="timezone") from None
    return name


def next_run(expression: str, timezone: str, after: float) -> int:
    """The first run time of ``expression`` on ``timezone``'s clock strictly after unix time ``after``.

    Raises ``InvalidRequest`` (param ``cron``) when the expression never matches (``0 0 31 2 *``).
    """
    zone = ZoneInfo(timezone)
    try:
        runs = croniter(expression, datetime.fromtimestamp(int(after), zone))
        fixed_hours = runs.expanded[1] != ["*"]
        for _ in range(MAX_REPEATS_SKIPPED):
            at = runs.get_next(datetime)
            if fixed_hours and _second_pass(at):
                continue  # cron on a wall clock: 02:00 on the night the clock goes back is one run, not two
            if (when := int(at.timestamp())) > after:
                return when
    except CroniterError as exc:
        raise InvalidRequest(f"The cron expression '{expression}' never matches a date: {exc}",
                             param="cron") from None
    raise InvalidRequest(f"The cron expression '{expression}' has no run after {int(after)}.", param="cron")


def _second_pass(at: datetime) -> bool:
    """A wall-clock time the clock shows twice (DST ending), seen the second time."""
    return at.fold == 1 and at.utcoffset() != at.replace(fold=0).utcoffset()
