"""Periodic schedules: what a schedule is, when it ticks, and what a scheduler does now.

Pure: no backend, no clock, no I/O. Times are UNIX timestamps in float seconds, passed in,
and ticks fall on whole seconds. Every process computes the same ticks from the same
``Schedule`` whenever it started, which is what lets many schedulers share one schedule:
they agree on the ticks, and the backend's atomic per-tick claim makes exactly one of them
submit the job for each.

Ticks:

* ``every`` is anchored to the UNIX epoch: ticks at ``k * every`` seconds since
  1970-01-01T00:00:00Z, so ``every=timedelta(hours=1)`` ticks on the hour (UTC) and
  ``timedelta(days=1)`` at 00:00 UTC. ``tz`` does not apply (it must stay ``"UTC"``): use a
  cron expression for local times.
* ``cron`` ticks in ``tz``. Five fields (``minute hour day-of-month month day-of-week``)
  follow Debian cron on daylight-saving nights when minute and hour are fixed: a time the
  clocks skip runs once when they land (``30 2 * * *`` runs at 03:00 on the spring-forward
  night in Europe/Paris), a time they repeat runs once, the first time. Expressions whose
  minute or hour starts with ``*`` follow real time, as cron does. Six fields put seconds
  first (cronsim's form, ``*/10 * * * * *``) and always follow real time: a local time the
  clocks skip does not run that night, a repeated one runs twice — use ``tz="UTC"`` for
  them to avoid both.

What a scheduler does (``plan``): the backend keeps, per schedule, the newest tick claimed
so far. A schedule seen for the first time fires for no tick from before it existed: the
latest tick at or before now is recorded without a job (``TickPlan.baseline``). After that
the due ticks are those after the recorded one, up to now. Only the newest due tick can be
on time — a tick is late once the next one is due — and it is on time while ``now - tick
<= grace_for(tick)``. ``catch_up`` decides about the rest: ``"skip"`` runs only an on-time
tick; ``"once"`` and ``N`` run the newest 1 or N due ticks even when late; every other due
tick is counted as missed, never listed, so a long downtime keeps the plan small.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from jobqueue.errors import (
    InvalidArgumentError,
    InvalidOptionError,
    InvalidScheduleError,
    NotSerializableError,
)
from jobqueue.job import JSON, Backoff, check_json, is_unicode
from jobqueue.worker import validate_attempts, validate_priority, validate_timeout

OVERLAP_POLICIES = ("skip", "allow", "queue")
"""``skip``: no new job while the schedule's previous one is waiting, delayed or active;
``allow``: a job every tick regardless; ``queue``: at most one waiting behind a running one."""

MAX_CATCH_UP = 1000
"""``catch_up=N`` backfills at most this many ticks after a downtime."""

DEFAULT_GRACE = 60.0
"""Without ``grace``, a tick is on time for this many seconds, or its period if shorter."""

MAX_COUNTED = 10_000
"""``plan`` counts at most this many due ticks of a cron schedule one by one; beyond, the
missed count is a lower bound (``TickPlan.capped``). Intervals are counted exactly."""

SCHEDULE_OPTIONS = ("priority", "attempts", "backoff", "timeout")
"""The ``submit_job`` options a schedule passes to each of its jobs."""

REFUSED_OPTIONS = {
    "delay": "a scheduled job is due at its tick; to run later, move the cron expression",
    "run_at": "a scheduled job is due at its tick; to run later, move the cron expression",
    "unique_key": "the schedule already submits one job per tick, and overlap= decides "
    "whether another may be submitted while the last is waiting or running",
}
"""``submit_job`` options a schedule refuses, with the reason its error gives."""

_OPTION_CHECKS: dict[str, Callable[[object], object]] = {
    "priority": validate_priority,
    "attempts": validate_attempts,
    "backoff": Backoff.parse,
    "timeout": validate_timeout,
}

_LATEST_TIME = datetime(9000, 1, 1, tzinfo=timezone.utc).timestamp()
"""Times past this are refused: cron arithmetic looks decades ahead and datetime stops at
the year 9999."""

_SEARCH_BACK = 50 * 366 * 86400.0
"""How far back the latest tick of a cron expression is looked for (cronsim looks as far
ahead): every valid expression matches more often than that."""

_FIRST_SPAN = 64.0
"""The first window searched backwards for the latest ticks; it doubles until they are
found, so frequent expressions are found at once and rare ones in a few dozen steps."""


@dataclass(frozen=True)
class Schedule:
    """A job submitted to worker ``worker`` with ``data`` on every tick of ``cron`` (in
    ``tz``) or of ``every``.

    ``overlap`` (``OVERLAP_POLICIES``) is applied by the backend when a tick is claimed;
    with ``"skip"``, ``catch_up=N`` submits one job, not N, because the first is still
    waiting when the next is claimed. ``catch_up``: ``"skip"`` drops late ticks; ``"once"``
    runs one job for a gap (the newest due tick, late or not); an int N runs the newest N due
    ticks. ``grace``: how late a tick may start and still be on time; ``None`` means
    ``min(60 s, the period)``, the period being the gap to the tick after it (a grace longer
    than the period has no further effect). ``options``: ``submit_job`` options for every job
    (``SCHEDULE_OPTIONS``; ``None`` values keep the worker's defaults).

    Two schedules are equal when their ``definition()`` is. Treat ``data`` as read-only: it
    is a copy taken, and part of the definition fixed, at construction.
    """

    name: str
    worker: str
    cron: str | None = None
    every: timedelta | None = None
    data: JSON = None
    tz: str = "UTC"
    overlap: str = "skip"
    catch_up: str | int = "skip"
    grace: timedelta | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    _zone: tzinfo = field(init=False, repr=False, compare=False)
    _period: int = field(init=False, repr=False, compare=False)
    """``every`` in whole seconds; 0 for a cron schedule."""
    _backfill: int = field(init=False, repr=False, compare=False)
    """How many of the newest due ticks run even when late: 0 for ``catch_up="skip"``."""
    _definition: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            self._validate()
        except InvalidOptionError as exc:  # a schedule's submit option is a setup mistake
            raise InvalidScheduleError(f"schedule {self.name!r}: {exc}") from None
        object.__setattr__(self, "_definition", self._canonical())

    def _validate(self) -> None:
        _check_label("a schedule's name", self.name)
        label = f"schedule {self.name!r}"
        _check_label(f"{label}: worker (the name of the worker its jobs run on)", self.worker)
        object.__setattr__(self, "_zone", _zone(label, self.tz))
        if (self.cron is None) == (self.every is None):
            raise InvalidScheduleError(
                f"{label}: give exactly one of cron (e.g. cron='0 2 * * *') or every (e.g. "
                f"every=timedelta(minutes=5)), got cron={self.cron!r}, every={self.every!r}"
            )
        if self.cron is not None:
            _check_cron(label, self.cron, self._zone)
            object.__setattr__(self, "_period", 0)
        else:
            object.__setattr__(self, "_period", _every_seconds(label, self.every))
            if self.tz != "UTC":
                raise InvalidScheduleError(
                    f"{label}: tz applies to cron schedules only; every= ticks at multiples "
                    "of the interval since the UNIX epoch, whatever the zone. For local "
                    f"times use cron, e.g. cron='0 0 * * *', tz={self.tz!r}"
                )
        if self.overlap not in OVERLAP_POLICIES:
            raise InvalidScheduleError(
                f"{label}: overlap must be 'skip' (no new job while the last is waiting, "
                "delayed or active), 'allow' (a job every tick) or 'queue' (at most one "
                f"waiting behind a running one), got {self.overlap!r}"
            )
        object.__setattr__(self, "_backfill", _backfill(label, self.catch_up))
        if self.grace is not None and (
            not isinstance(self.grace, timedelta) or self.grace <= timedelta(0)
        ):
            raise InvalidScheduleError(
                f"{label}: grace must be a positive timedelta (how late a tick may start and "
                "still be on time), e.g. timedelta(seconds=30), or None for min(60 s, the "
                f"period), got {self.grace!r}"
            )
        object.__setattr__(self, "options", _options(label, self.options))
        try:
            # A copy: the definition is fixed now, whatever the caller does to its dict later.
            object.__setattr__(self, "data", json.loads(check_json(self.data)))
        except NotSerializableError as exc:
            raise InvalidScheduleError(f"{label} data: {exc}") from None

    def _canonical(self) -> str:
        options = {
            key: value.to_dict() if isinstance(value, Backoff) else value
            for key, value in self.options.items()
        }
        return json.dumps(
            {
                "name": self.name,
                "worker": self.worker,
                # cronsim reads fields case-insensitively and split on any whitespace.
                "cron": None if self.cron is None else " ".join(self.cron.upper().split()),
                "every": self._period or None,
                "tz": self.tz,
                "data": self.data,
                "overlap": self.overlap,
                "catch_up": self.catch_up,
                "grace": None if self.grace is None else self.grace.total_seconds(),
                "options": options,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )

    def definition(self) -> str:
        """Everything that defines the schedule as canonical JSON (sorted keys, no spaces,
        ``every`` and ``grace`` in seconds): equal for equal schedules, so a stored schedule
        whose definition differs from the code's under the same name has been changed."""
        return self._definition

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._definition == other._definition

    def __hash__(self) -> int:
        return hash(self._definition)

    # -- ticks --------------------------------------------------------------------------------

    def next_tick(self, after: float) -> float:
        """The first tick strictly after ``after``; ``math.inf`` if a cron expression matches
        no time in the 50 years after it (cronsim's horizon)."""
        after = _check_time("after", after)
        return next(self._ticks_after(after), math.inf)

    def ticks(self, after: float, until: float) -> Iterator[float]:
        """The ticks in ``(after, until]``, ascending, computed as they are read (a
        one-second schedule over a long downtime holds no list)."""
        after = _check_time("after", after)
        until = _check_time("until", until)
        return _until(self._ticks_after(after), until)

    def grace_for(self, tick: float) -> float:
        """Seconds after ``tick`` during which it still starts on time: ``grace`` (default
        60) or the period from ``tick`` to the next tick, whichever is shorter."""
        base = DEFAULT_GRACE if self.grace is None else self.grace.total_seconds()
        return min(base, self.next_tick(tick) - tick)

    def _ticks_after(self, after: float) -> Iterator[float]:
        """Every tick strictly after ``after``, ascending, without end (cron: until cronsim's
        horizon)."""
        if self._period:
            multiple = (math.floor(after) // self._period + 1) * self._period
            while True:
                yield float(multiple)
                multiple += self._period
        assert self.cron is not None
        start = datetime.fromtimestamp(math.floor(after), self._zone)
        previous = after
        for moment in CronSim(self.cron, start):
            tick = moment.timestamp()
            # cronsim walks wall-clock time: started inside an hour the clocks repeat, its
            # first results can be the first pass's, before `after`. Skipping anything not
            # past the last tick given makes the ticks the same wherever iteration starts.
            if tick > previous:
                previous = tick
                yield tick

    def _newest(self, count: int, after: float | None, until: float) -> list[float]:
        """The newest ``count`` ticks in ``(after, until]`` (``after=None``: no lower bound),
        ascending; fewer if there are not that many."""
        if self._period:
            period = self._period
            last = math.floor(until) // period * period
            first = last - (count - 1) * period
            if after is not None:
                first = max(first, (math.floor(after) // period + 1) * period)
            return [float(tick) for tick in range(first, last + 1, period)]
        # Doubling windows back from `until`, each read forwards, rather than cronsim's
        # reverse mode: the ticks then come from the same code path as next_tick's, so they
        # agree on DST nights by construction, not by two walks matching.
        floor = max(0.0, until - _SEARCH_BACK) if after is None else after
        found: list[float] = []
        high, span = until, _FIRST_SPAN
        while len(found) < count and high > floor:
            low = max(floor, high - span)
            window = deque(self.ticks(low, high), maxlen=count - len(found))
            found[:0] = window
            high, span = low, span * 2
        return found

    def _due(self, after: float, until: float, keep: int) -> tuple[int, list[float], bool]:
        """How many ticks are in ``(after, until]``, the newest ``keep`` of them, and whether
        the count stopped at ``MAX_COUNTED`` (then it is a lower bound)."""
        if self._period:
            count = max(0, math.floor(until) // self._period - math.floor(after) // self._period)
            return count, self._newest(keep, after, until), False
        newest: deque[float] = deque(maxlen=keep)
        count = 0
        for tick in self.ticks(after, until):
            count += 1
            newest.append(tick)
            if count > MAX_COUNTED:
                # Too many to count one by one (a frequent cron after a long downtime): find
                # the newest from the other end, and count what was seen of both.
                later = self._newest(keep, tick, until)
                return count + len(later), [*newest, *later][-keep:], True
        return count, list(newest), False


def _until(ticks: Iterator[float], until: float) -> Iterator[float]:
    for tick in ticks:
        if tick > until:
            return
        yield tick


# -- what a scheduler does now ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedClaim:
    """One backend call: if ``tick`` is newer than the schedule's stored tick, store it, add
    ``missed`` to the schedule's missed count and, if ``submit``, submit a job (the overlap
    policy permitting) — all atomically, so that of many schedulers making the same claim
    exactly one does it."""

    tick: float
    missed: int
    submit: bool


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What a scheduler should do now for one schedule (``plan``).

    ``baseline``: on first sight only, the tick to record as the schedule's newest if the
    backend holds none yet, with no job. ``runs``: the ticks to submit a job for, ascending;
    when any, the last is ``newest``. ``missed``: due ticks that get no job — exact, or a
    lower bound when ``capped``. ``newest``: the newest due tick, which the stored tick moves
    to; ``None`` when nothing is due.
    """

    baseline: float | None = None
    runs: tuple[float, ...] = ()
    missed: int = 0
    capped: bool = False
    newest: float | None = None

    def claims(self) -> tuple[PlannedClaim, ...]:
        """The backend calls that carry out this plan, in order: one per run, the missed
        count with the first (the missed ticks are all older than every run); or, when
        nothing runs, one that only moves the stored tick to ``newest``. Empty on first
        sight: record ``baseline`` instead."""
        if self.runs:
            return tuple(
                PlannedClaim(tick, self.missed if index == 0 else 0, True)
                for index, tick in enumerate(self.runs)
            )
        if self.newest is not None:
            return (PlannedClaim(self.newest, self.missed, False),)
        return ()


def plan(schedule: Schedule, last_tick: float | None, now: float) -> TickPlan:
    """What to do at ``now`` for ``schedule``, whose newest claimed tick is ``last_tick``
    (``None``: the backend has never seen it).

    * Never seen: no job; ``baseline`` is the latest tick at or before ``now`` (``None`` if
      there is none), so a new schedule does not fire for a tick from before it existed.
    * Otherwise the due ticks are those in ``(last_tick, now]``. Only the newest can be on
      time, when ``now - newest <= schedule.grace_for(newest)``.
    * ``catch_up="skip"``: the newest runs if on time; ``"once"``: the newest runs, on time
      or late; ``N``: the newest N run. Every other due tick is missed.

    A ``last_tick`` after ``now`` (a scheduler with a clock ahead claimed it) leaves nothing
    due.
    """
    now = _check_time("now", now)
    if last_tick is None:
        latest = schedule._newest(1, None, now)
        return TickPlan(baseline=latest[0] if latest else None)
    last_tick = _check_time("last_tick", last_tick)
    backfill = schedule._backfill
    count, newest, capped = schedule._due(last_tick, now, max(backfill, 1))
    if not count:
        return TickPlan()
    tick = newest[-1]
    if backfill:
        runs = tuple(newest[-backfill:])
    elif now - tick <= schedule.grace_for(tick):
        runs = (tick,)
    else:
        runs = ()
    return TickPlan(runs=runs, missed=count - len(runs), capped=capped, newest=tick)


# -- validation -------------------------------------------------------------------------------


def _check_time(label: str, value: object) -> float:
    """``value`` as a float UNIX timestamp, or ``InvalidArgumentError`` naming ``label``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value <= _LATEST_TIME  # NaN fails this too
    ):
        raise InvalidArgumentError(
            f"{label} must be a UNIX timestamp in seconds (an int or float from 0 to "
            f"{_LATEST_TIME:.0f}, before the year 9000), got {value!r}"
        )
    return float(value)


def _check_label(what: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidScheduleError(f"{what} must be a non-empty str, got {value!r}")
    if not is_unicode(value):
        raise InvalidScheduleError(
            f"{what} {value!r} is not valid Unicode (it holds a lone surrogate): no backend "
            "can store it"
        )


def _zone(label: str, tz: object) -> tzinfo:
    if tz == "UTC":
        # cronsim skips its DST handling for exactly this object, and no tz database is needed.
        return timezone.utc
    if not isinstance(tz, str):
        raise InvalidScheduleError(
            f"{label}: tz must be an IANA time zone name such as 'Europe/Paris', got {tz!r}"
        )
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a key at all ('../x', '')
        raise InvalidScheduleError(
            f"{label}: unknown time zone {tz!r}; use an IANA name such as 'Europe/Paris' or "
            "'America/New_York' (if the system has no time zone database, install tzdata)"
        ) from None


def _check_cron(label: str, cron: object, zone: tzinfo) -> None:
    if not isinstance(cron, str):
        raise InvalidScheduleError(f"{label}: cron must be a str such as '0 2 * * *', got {cron!r}")
    try:
        first = next(CronSim(cron, datetime(2000, 1, 1, tzinfo=zone)), None)
    except CronSimError as exc:
        hint = " (nicknames such as @daily are not supported)" if cron.startswith("@") else ""
        raise InvalidScheduleError(
            f"{label}: cron {cron!r} is not a valid expression ({exc}){hint}; write five "
            "fields 'minute hour day-of-month month day-of-week' such as '0 2 * * *', or six "
            "with seconds first such as '*/10 * * * * *'"
        ) from None
    if first is None:
        # Calendar patterns repeat within 28 years; none in the 50 after 2000 means never.
        raise InvalidScheduleError(
            f"{label}: cron {cron!r} matches no time at all; its day-of-month, month and "
            "day-of-week fields exclude each other"
        )


def _every_seconds(label: str, every: object) -> int:
    if not isinstance(every, timedelta):
        raise InvalidScheduleError(
            f"{label}: every must be a timedelta such as timedelta(minutes=5), got {every!r}"
        )
    second = timedelta(seconds=1)
    if every < second:
        raise InvalidScheduleError(f"{label}: every must be at least 1 second, got {every!r}")
    if every % second:
        raise InvalidScheduleError(
            f"{label}: every must be a whole number of seconds (ticks fall on whole seconds), "
            f"got {every!r}"
        )
    return every // second


def _backfill(label: str, catch_up: object) -> int:
    if catch_up == "skip":
        return 0
    if catch_up == "once":
        return 1
    if (
        isinstance(catch_up, int)
        and not isinstance(catch_up, bool)
        and 1 <= catch_up <= MAX_CATCH_UP
    ):
        return catch_up
    raise InvalidScheduleError(
        f"{label}: catch_up must be 'skip' (late ticks get no job), 'once' (one job for a "
        f"gap) or an int from 1 to {MAX_CATCH_UP} (jobs for up to that many of the newest "
        f"ticks), got {catch_up!r}"
    )


def _options(label: str, options: object) -> Mapping[str, object]:
    """The options checked, ``None`` values dropped (they keep the worker's defaults, as in
    ``submit_job``), read-only."""
    if not isinstance(options, Mapping):
        raise InvalidScheduleError(
            f"{label}: options must be a mapping of submit options such as "
            f"{{'priority': 5, 'timeout': 600}}, got {options!r}"
        )
    checked: dict[str, object] = {}
    for key, value in options.items():
        if key in REFUSED_OPTIONS:
            raise InvalidScheduleError(
                f"{label}: option {key!r} is not for schedules: {REFUSED_OPTIONS[key]}"
            )
        if key not in _OPTION_CHECKS:
            raise InvalidScheduleError(
                f"{label}: unknown option {key!r}; a schedule's jobs take "
                f"{', '.join(SCHEDULE_OPTIONS)}"
            )
        if value is not None:
            checked[key] = _OPTION_CHECKS[key](value)
    return MappingProxyType(checked)
