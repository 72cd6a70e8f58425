"""The Job value: what a job is, its states, and its lossless JSON form."""

from __future__ import annotations

import enum
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from jobqueue.backoff import MAX_DELAY_SECONDS as MAX_DELAY_SECONDS  # re-exported
from jobqueue.backoff import Backoff as Backoff  # re-exported: its documented home
from jobqueue.dependency import (
    Dependency,
    completed_results,
    ended_errors,
    parse_dependencies,
)
from jobqueue.errors import CorruptJobError, InvalidOptionError, NotSerializableError
from jobqueue.json_value import JSON as JSON  # re-exported: its documented home

MAX_LOGS = 100
"""A job keeps at most this many log lines; the oldest are dropped first."""

MAX_LOG_MESSAGE = 2000
"""Log and progress messages are cut to this many characters."""

MAX_HISTORY = 20
"""A job keeps the records of at most this many finished attempts; the oldest go first."""

MAX_JSON_DEPTH = 100
"""Job data and handler results may nest lists and objects at most this deep (``[[1]]`` is 2):
far below what any JSON decoder or the Python stack handles, so that whatever is stored can
be read back by every reader. Deeper values are refused with ``NotSerializableError``, and a
stored value deeper than this (an older version's, a foreign writer's) reads as corrupt."""


class JobState(str, enum.Enum):
    """Where a job is in its life. ``waiting → active → completed | failed``, with
    ``delayed`` before ``waiting`` for jobs that run later (delays and retries), and
    ``cancelled`` for a job cancelled before or while it ran."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    """In a flow, waiting for its dependencies (``depends_on``): never claimed; it becomes
    waiting in the same step as the last dependency's completion."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def is_live(self) -> bool:
        """Whether a job in this state holds its unique key (rule 5: waiting, delayed, active)."""
        return self in LIVE_STATES


FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
"""States a job does not leave by itself (``retry_job`` brings failed and cancelled back)."""

LIVE_STATES = frozenset({JobState.WAITING, JobState.DELAYED, JobState.ACTIVE, JobState.BLOCKED})
"""States in which a job holds its unique key: every state but the finished ones."""


class AttemptOutcome(str, enum.Enum):
    """How one attempt ended, as its record in ``Job.history`` says."""

    COMPLETED = "completed"
    FAILED = "failed"
    """Failed with no attempt left."""
    RETRIED = "retried"
    """Failed; the job runs again."""
    CANCELLED = "cancelled"
    STALLED = "stalled"
    """Its lease expired (the dispatcher died, hung or lost the backend): the lease was fenced."""
    RELEASED = "released"
    """Given back unfinished at shutdown; not counted as an attempt."""
    SNOOZED = "snoozed"
    """Put back by its handler to run again later (``job.retry_in``); not counted as an
    attempt."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Attempt:
    """The record of one finished attempt: who ran it, when, and how it ended."""

    number: int
    dispatcher: str | None
    started_at: float | None
    finished_at: float
    outcome: AttemptOutcome
    error: JobError | None = None

    def to_dict(self) -> dict[str, JSON]:
        return {
            "number": self.number,
            "dispatcher": self.dispatcher,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome.value,
            "error": self.error.to_dict() if self.error else None,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, JSON]) -> Attempt:
        error = raw.get("error")
        started = raw.get("started_at")
        return cls(
            number=int(raw["number"]),
            dispatcher=raw.get("dispatcher"),
            started_at=None if started is None else float(started),
            finished_at=float(raw["finished_at"]),
            outcome=AttemptOutcome(raw["outcome"]),
            error=None if error is None else JobError(**error),
        )


@dataclass(frozen=True, slots=True)
class JobError:
    """The last failure of a job: exception type, message and formatted traceback."""

    type: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def to_dict(self) -> dict[str, JSON]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_exception(cls, exc: BaseException, traceback_text: str = "") -> JobError:
        return cls(type(exc).__name__, str(exc), traceback_text)


@dataclass(frozen=True, slots=True)
class JobLog:
    """One timestamped line written by a handler through ``job.log``."""

    at: float
    message: str

    def to_dict(self) -> dict[str, JSON]:
        return {"at": self.at, "message": self.message}


class _Submitting:
    """A slot for ``Job`` outside its fields (so never in its equality, repr or copies):
    ``build_job`` puts in ``_submit_json`` the data it built the job from and that data's
    JSON text, checked; a backend submitting the job right after may store that text instead
    of encoding the data again, while ``job.data`` is still that very object."""

    __slots__ = ("_submit_json",)
    _submit_json: tuple[JSON, str]


@dataclass(slots=True)
class Job(_Submitting):
    """A job as stored: a plain value, reading it never touches the backend.

    Times are UNIX timestamps in seconds (float). ``attempts`` is the most attempts allowed,
    ``attempts_made`` how many were started; ``stalls`` counts leases that expired.
    """

    id: str
    name: str
    data: JSON
    title: str | None = None
    state: JobState = JobState.WAITING
    priority: int = 0
    attempts: int = 1
    attempts_made: int = 0
    stalls: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float | None = None
    unique_key: str | None = None
    created_at: float = 0.0
    run_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0
    progress_message: str | None = None
    result: JSON = None
    error: JobError | None = None
    logs: list[JobLog] = field(default_factory=list)
    cancel_requested: bool = False
    """An active job asked to stop: its dispatcher interrupts the handler."""
    dispatcher: str | None = None
    """The id of the dispatcher that holds the job while it is active."""
    history: list[Attempt] = field(default_factory=list)
    flow_id: str | None = None
    """The flow this job belongs to: the id of the flow's first job (``submit_flow``)."""
    depends_on: tuple[Dependency, ...] = ()
    """The jobs this one waits for (BLOCKED until each has an outcome), with its rule."""
    dependents: tuple[Dependency, ...] = ()
    """The jobs waiting for this one, each with its rule for this one."""
    dependency_outcomes: dict[str, JSON] = field(default_factory=dict)
    """What each dependency delivered, by id: ``{"state": "completed", "result": ...}`` or
    ``{"state": "failed" | "cancelled", "error": {...} | None}``."""
    """Finished attempts, oldest first (at most ``MAX_HISTORY``), kept across retries."""
    lease_expires_at: float | None = field(default=None, compare=False)
    """Not part of a submitted job: when the lease of an ACTIVE job runs out, as the backend
    measures it (the Redis server's clock by default), filled in by the reads (``get``,
    ``list_jobs``) and claims; ``None`` in every other state. A dashboard shows active jobs
    about to lose theirs. It moves on with every heartbeat without the job changing, so it
    takes no part in equality (like ``deduplicated``)."""
    deduplicated: bool = field(default=False, compare=False)
    """Not stored: ``True`` on the job ``submit_job`` returned when a waiting, delayed or
    active job already held the same ``unique_key`` — that job is returned and nothing new
    is stored. Always ``False`` on jobs read back."""
    unreadable: bool = field(default=False, compare=False)
    """Not stored: ``True`` on what a listing shows for a stored record it could not decode
    (``unreadable_job``): no data, its ``error`` a ``CorruptJobError`` giving the reason."""

    def to_dict(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "name": self.name,
            "data": self.data,
            "title": self.title,
            "state": self.state.value,
            "priority": self.priority,
            "attempts": self.attempts,
            "attempts_made": self.attempts_made,
            "stalls": self.stalls,
            "backoff": self.backoff.to_dict(),
            "timeout": self.timeout,
            "unique_key": self.unique_key,
            "created_at": self.created_at,
            "run_at": self.run_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "result": self.result,
            "error": self.error.to_dict() if self.error else None,
            "logs": [entry.to_dict() for entry in self.logs],
            "cancel_requested": self.cancel_requested,
            "dispatcher": self.dispatcher,
            "history": [attempt.to_dict() for attempt in self.history],
            "flow_id": self.flow_id,
            "depends_on": [d.to_list() for d in self.depends_on],
            "dependents": [d.to_list() for d in self.dependents],
            "dependency_outcomes": self.dependency_outcomes,
            "lease_expires_at": self.lease_expires_at,
        }

    def to_json(self) -> str:
        return dumps_json(self.to_dict(), MAX_JSON_DEPTH + 1)

    @classmethod
    def from_dict(cls, raw: Mapping[str, JSON]) -> Job:
        """Rebuild a job from ``to_dict`` output; anything malformed raises
        ``CorruptJobError`` naming the field."""
        try:
            error = raw.get("error")
            timeout = raw.get("timeout")
            started = raw.get("started_at")
            finished = raw.get("finished_at")
            lease = raw.get("lease_expires_at")
            return cls(
                id=str(raw["id"]),
                name=_expect(raw, "name", str),
                data=raw.get("data"),
                title=raw.get("title"),
                state=JobState(raw["state"]),
                priority=int(raw.get("priority", 0)),
                attempts=int(raw.get("attempts", 1)),
                attempts_made=int(raw.get("attempts_made", 0)),
                stalls=int(raw.get("stalls", 0)),
                backoff=Backoff.parse(raw.get("backoff")),
                timeout=None if timeout is None else float(timeout),
                unique_key=raw.get("unique_key"),
                created_at=float(raw.get("created_at", 0.0)),
                run_at=float(raw.get("run_at", 0.0)),
                started_at=None if started is None else float(started),
                finished_at=None if finished is None else float(finished),
                progress=float(raw.get("progress", 0.0)),
                progress_message=raw.get("progress_message"),
                result=raw.get("result"),
                error=None if error is None else JobError(**error),
                logs=[JobLog(float(e["at"]), str(e["message"])) for e in raw.get("logs") or []],
                cancel_requested=bool(raw.get("cancel_requested", False)),
                dispatcher=raw.get("dispatcher"),
                history=[Attempt.from_dict(a) for a in raw.get("history") or []],
                flow_id=_optional_str(raw, "flow_id"),
                depends_on=parse_dependencies(raw.get("depends_on")),
                dependents=parse_dependencies(raw.get("dependents")),
                dependency_outcomes=dict(raw.get("dependency_outcomes") or {}),
                lease_expires_at=None if lease is None else float(lease),
            )
        except CorruptJobError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOptionError) as exc:
            raise CorruptJobError(f"stored job record is malformed ({exc!r})") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Job:
        # The record wraps its data and result one level deeper than they may nest.
        raw = loads_stored(text, "stored job record", MAX_JSON_DEPTH + 1)
        if not isinstance(raw, dict):
            raise CorruptJobError("stored job record is not a JSON object")
        return cls.from_dict(raw)

    def dependency_results(self) -> dict[str, JSON]:
        """The results of the dependencies that completed, by job id."""
        return completed_results(self.dependency_outcomes)

    def dependency_errors(self) -> dict[str, JobError | None]:
        """The dependencies that failed or were cancelled (the ``ignore`` rule let this job
        run anyway), by job id, with their last error."""
        return {
            job_id: JobError(**error) if isinstance(error, dict) else None
            for job_id, error in ended_errors(self.dependency_outcomes).items()
        }

    def copy(self) -> Job:
        """A deep-enough copy: the log list is new, JSON values are shared read-only."""
        return replace(
            self,
            logs=list(self.logs),
            history=list(self.history),
            dependency_outcomes=dict(self.dependency_outcomes),
        )


UNREADABLE_TITLE = "(unreadable record)"


def unreadable_job(job_id: object, name: object, state: object, reason: str) -> Job:
    """What a listing shows for a stored job it cannot decode, instead of hiding it or
    failing the whole listing: its id, name and state as far as they read, no data, and
    ``error`` of type ``CorruptJobError`` giving the reason (``get`` raises that error)."""
    try:
        known = JobState(state)
    except ValueError:
        known = JobState.FAILED
    return Job(
        id=str(job_id),
        name=name if isinstance(name, str) else "?",
        data=None,
        title=UNREADABLE_TITLE,
        state=known,
        error=JobError("CorruptJobError", reason),
        unreadable=True,
    )


_T = TypeVar("_T")


def _optional_str(raw: Mapping[str, JSON], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise CorruptJobError(f"stored job field {key!r} should be a string, got {value!r}")
    return value


def _expect(raw: Mapping[str, JSON], key: str, kind: type[_T]) -> _T:
    value = raw[key]
    if not isinstance(value, kind):
        raise CorruptJobError(f"stored job field {key!r} should be {kind.__name__}, got {value!r}")
    return value


# What json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False) builds
# on every call, built once (an encoder keeps no state between calls).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def dumps_json(value: JSON, max_depth: int = MAX_JSON_DEPTH) -> str:
    """Strict, compact JSON: no NaN/Infinity, str keys only, no custom objects, nested at most
    ``max_depth`` levels.

    Raises ``NotSerializableError`` saying what is wrong.
    """
    if value is None:  # the common handler result
        return "null"
    # The encoder's own recursion guard stops deep values first, unless the caller raised the
    # recursion limit so far that the C stack is at risk: then walk the value before encoding.
    if sys.getrecursionlimit() > _SAFE_RECURSION_LIMIT and _nests_deeper(value, max_depth):
        raise _too_deep(max_depth)
    try:
        text = _ENCODER.encode(value)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except (TypeError, ValueError) as exc:
        raise NotSerializableError(
            f"value is not plain JSON ({exc}); pass only dict, list, str, int, finite float, "
            "bool and None (convert dates, sets and objects yourself)"
        ) from exc
    if text_nests_deeper(text, max_depth):
        raise _too_deep(max_depth)
    if not text.isascii():  # ASCII text is valid Unicode: only other text needs the check
        _check_unicode(text)
    return text


def _check_unicode(text: str) -> None:
    """Refuse text no store can hold: a lone surrogate (``"\\ud800"``) has no UTF-8 form."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotSerializableError(
            f"value is not storable JSON: it holds text that is not valid Unicode ({exc.reason}: "
            f"{text[exc.start : exc.end]!r}); decode bytes with errors='replace' first"
        ) from None


def is_unicode(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (no lone surrogates), as every store needs."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_SCALARS = (str, int, float, bool)


def check_json(value: JSON) -> str:
    """Serialize ``value`` strictly and make sure it reads back equal (dict keys must be str)."""
    text = dumps_json(value)
    if value is None or type(value) in _SCALARS:
        return text  # nothing that could change shape (the common handler result)
    if json.loads(text) != value:
        raise NotSerializableError(
            "value does not survive a JSON round trip (tuples, non-str dict keys or "
            "subclasses change shape); pass plain dict/list values with str keys"
        )
    return text


_CONTAINERS = (dict, list, tuple)
_SAFE_RECURSION_LIMIT = 4000
"""Up to this recursion limit the json module's C code raises RecursionError well before
it could exhaust a thread's stack."""


def _too_deep(max_depth: int) -> NotSerializableError:
    return NotSerializableError(
        f"value nests lists and objects more than {max_depth} levels deep, which not every "
        "reader can decode; flatten it (or store it elsewhere and pass a reference)"
    )


def _nests_deeper(value: JSON, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` deep: level by level, without
    recursion, so that neither the caller's recursion limit nor the C stack is at stake (a
    cycle through one container counts as too deep)."""
    if not isinstance(value, _CONTAINERS):
        return False
    level = [value]
    budget = _WALK_BUDGET
    for _ in range(limit):
        nested = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            nested += [item for item in items if isinstance(item, _CONTAINERS)]
        if not nested:
            return False
        budget -= len(nested)
        if budget < 0:  # shared or cyclic containers: the encoder refuses those itself
            return False
        level = nested
    return True


_WALK_BUDGET = 2_000_000
"""Containers ``_nests_deeper`` looks at, at most: more than any value within the data limit
holds, and a cycle that branches would otherwise double the walk each level."""


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PAIR = re.compile(r"\[\]|\{\}")


def text_nests_deeper(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests more than ``limit`` deep, decided on the text (before a
    decoder recurses into it): strings out, then innermost bracket pairs peeled off, one
    level a pass. Text that does not peel down to nothing is not JSON: reported as deeper."""
    if text.count("[") + text.count("{") <= limit:  # the common case: few containers at all
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):
        brackets, peeled = _PAIR.subn("", brackets)
        if not brackets:
            return False
        if not peeled:
            return True
    return True


def loads_stored(text: str | bytes, what: str, max_depth: int = MAX_JSON_DEPTH) -> JSON:
    """Decode stored JSON ``text``; anything no reader could use (not text, not JSON, nested
    deeper than ``max_depth``) raises ``CorruptJobError`` naming ``what``."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise CorruptJobError(f"{what} is not UTF-8 ({exc})") from exc
    if not isinstance(text, str):
        raise CorruptJobError(f"{what} holds {type(text).__name__}, not JSON text")
    if text_nests_deeper(text, max_depth):
        raise CorruptJobError(
            f"{what} nests deeper than {max_depth} levels (or is not JSON): no reader decodes it"
        )
    try:
        return json.loads(text)
    except RecursionError:  # a caller's very low recursion limit
        raise CorruptJobError(f"{what} is nested too deeply to decode") from None
    except ValueError as exc:
        raise CorruptJobError(f"{what} is not valid JSON ({exc})") from exc
