"""When a schedule fires: pure functions of a cron expression, a time zone and the clock.

Nothing here touches Django or the database, and nothing reads the clock: ``now`` is
always a parameter, so every rule is tested step by step with the times it names (DST
transitions included). Cron expressions are parsed by ``cronsim`` (the parser of
healthchecks.io), whose DST rules are Debian cron's: a job at a fixed time that falls in
the hour a spring-forward skips runs once, at the first minute after it; one in the hour
an autumn fall-back repeats runs once, at the first of the two.

The heart is ``due_ticks``: given where a schedule's ticking stands (the last tick it
recorded, else when it was enabled) and the clock, which tick is due. A process that was
down for a while does not replay every tick it missed: only the latest is due, as a
catch-up that says how many it stands for.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

UTC = dt.UTC
# A tick found later than this after its time is a catch-up (the ticker was down or
# stalled), even when it is the only one missed: whoever reads the history should know
# the run did not start when the schedule said.
GRACE = dt.timedelta(minutes=2)
# Counting the ticks a long outage missed stops here ("at least this many").
MAX_COUNTED = 10_000
# Cron fields: digits, names (JAN, MON), and * , - / L W # ?; anything else is refused
# before cronsim sees it, so an error names the character.
CRON_CHARS = re.compile(r"[0-9A-Za-z*,\-/#?]+")
# IANA names: letters, digits and _ + - separated by /; checked against the tz database.
ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


class BadSchedule(ValueError):
    """A cron expression or time zone that cannot be used; ``field`` names which."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_cron(expr: str) -> str:
    """The expression, normalised (single spaces), if it is five valid cron fields."""
    if not isinstance(expr, str):
        raise BadSchedule("cron", "must be a string")
    fields = expr.split()
    if len(fields) != 5:
        raise BadSchedule(
            "cron",
            f"needs 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}",
        )
    for field in fields:
        if not CRON_CHARS.fullmatch(field):
            raise BadSchedule("cron", f"{field!r} has a character cron does not use")
    normal = " ".join(fields)
    try:
        it = CronSim(normal, dt.datetime(2000, 1, 1, tzinfo=UTC))
        next(it)
    except CronSimError as exc:
        raise BadSchedule("cron", f"{normal!r} is not valid: {exc}") from None
    except StopIteration:
        raise BadSchedule("cron", f"{normal!r} never fires") from None
    return normal


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name`` (``Europe/Paris``, ``UTC``)."""
    if not isinstance(name, str) or not ZONE_NAME.fullmatch(name) or len(name) > 64:
        raise BadSchedule("timezone", "must be an IANA time zone name such as Europe/Paris")
    if name not in _zone_names():
        raise BadSchedule("timezone", f"{name!r} is not an IANA time zone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule("timezone", f"{name!r} is not an IANA time zone") from None


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    # ZoneInfo alone would open any file name under the tz directory; the set is the list.
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def fire_times(cron: str, zone: str, after: dt.datetime) -> Iterator[dt.datetime]:
    """The schedule's fire times strictly after ``after`` (aware), in UTC, in order."""
    tz = parse_zone(zone)
    start = after.astimezone(tz)
    # cronsim starts from the whole second and may return it: skip anything not after.
    for local in CronSim(cron, start):
        at = local.astimezone(UTC)
        if at > after:
            yield at


def next_fires(cron: str, zone: str, after: dt.datetime, count: int = 5) -> list[dt.datetime]:
    """The next ``count`` fire times after ``after``, in UTC."""
    out: list[dt.datetime] = []
    for at in fire_times(cron, zone, after):
        out.append(at)
        if len(out) == count:
            break
    return out


@dataclass(frozen=True)
class Due:
    """A tick to record: its fire time, and whether it is a catch-up for ``missed`` more
    ticks that will never get a run of their own."""

    at: dt.datetime
    catch_up: bool = False
    missed: int = 0


def due_ticks(cron: str, zone: str, since: dt.datetime, now: dt.datetime) -> list[Due]:
    """The ticks to record now: none, or one.

    ``since`` is where ticking stands: the schedule's last recorded tick, or the moment it
    was created or last enabled (a fire time at exactly ``since`` has been dealt with).
    Every fire time in (since, now] is due; the latest is the one that gets a run. It is
    on time when it is the only one and no more than GRACE late; otherwise it is a
    catch-up, standing for the others (``missed``), which are never run.
    """
    if now <= since:
        return []
    due: dt.datetime | None = None
    count = 0
    for at in fire_times(cron, zone, since):
        if at > now:
            break
        due = at
        count += 1
        if count >= MAX_COUNTED:
            # A long outage of a frequent schedule: the latest due time is found directly,
            # and ``missed`` says MAX_COUNTED, meaning at least that many.
            due = _latest_before(cron, zone, now)
            count = MAX_COUNTED + 1
            break
    if due is None:
        return []
    late = now - due > GRACE
    if count == 1 and not late:
        return [Due(due)]
    return [Due(due, catch_up=True, missed=count - 1)]


def _latest_before(cron: str, zone: str, now: dt.datetime) -> dt.datetime:
    tz = parse_zone(zone)
    # Reverse iteration from one second after now, so a fire time at exactly now counts.
    start = (now + dt.timedelta(seconds=1)).astimezone(tz)
    for local in CronSim(cron, start, reverse=True):
        at = local.astimezone(UTC)
        if at <= now:
            return at
    raise AssertionError("a fire time was found going forward")  # pragma: no cover
