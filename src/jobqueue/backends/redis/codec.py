"""Job hashes in Redis: encoding a new job for the submit script, decoding script replies.

Field names are single letters to keep a queued job small (see ``lua/lib/keys.lua`` for the list).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from typing import TypeAlias, cast

from jobqueue.dependency import Dependency, parse_dependencies
from jobqueue.errors import CorruptJobError, InvalidOptionError
from jobqueue.job import (
    JSON,
    MAX_HISTORY,
    MAX_LOGS,
    Attempt,
    AttemptOutcome,
    Backoff,
    Job,
    JobError,
    JobLog,
    JobState,
    dumps_json,
    loads_stored,
    unreadable_job,
)

Arg: TypeAlias = str | int | float | bytes
"""One argument of a command."""
Command: TypeAlias = tuple[Arg, ...]
Reply: TypeAlias = bytes | str | int | list["Reply"] | None
"""A Redis reply as redis-py hands it over (RESP2: Lua tables come back as lists)."""

MAX_PRIORITY = 1_000_000
STATE_CODES = {
    JobState.WAITING: "w",
    JobState.DELAYED: "d",
    JobState.ACTIVE: "a",
    JobState.COMPLETED: "c",
    JobState.FAILED: "f",
    JobState.CANCELLED: "x",
    JobState.BLOCKED: "b",
}
STATES = {code: state for state, code in STATE_CODES.items()}


_DEFAULT_BACKOFF = Backoff()


def encode_new_job(job: Job) -> list[Arg]:
    """The submit script's arguments for one job: name, priority, unique, run_at, counts, then
    log entries and every field that differs from its default."""
    priority = job.priority
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidOptionError(f"priority must be an int, got {priority!r}")
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidOptionError(
            f"priority must be from {-MAX_PRIORITY} to {MAX_PRIORITY}, got {priority}"
        )
    data = job.data
    # The text build_job checked, while the data is still the object it checked.
    built = getattr(job, "_submit_json", None)
    data_json = built[1] if built is not None and built[0] is data else dumps_json(data)
    fields: list[str] = ["d", data_json, "c", exact_number(job.created_at)]
    if job.run_at != job.created_at:
        fields += ["r", exact_number(job.run_at)]
    if priority:
        fields += ["p", str(priority)]
    if job.unique_key is not None:
        fields += ["u", job.unique_key]
    if (
        job.title is not None
        or job.attempts != 1
        or job.backoff != _DEFAULT_BACKOFF
        or job.timeout is not None
    ):
        fields += ["o", _options_json(job)]
    # Rarely set on a new job, kept so that what was submitted is what is stored; a job just
    # built has none of them (checked first, cheaply).
    if (
        job.attempts_made
        or job.stalls
        or job.started_at is not None
        or job.finished_at is not None
        or job.progress
        or job.progress_message is not None
        or job.result is not None
        or job.error is not None
        or job.cancel_requested
        or job.dispatcher is not None
        or job.history
    ):
        fields += _rare_fields(job)
    if job.flow_id is not None or job.depends_on or job.dependents or job.dependency_outcomes:
        fields += flow_fields(job)
    logs = [dumps_json([entry.at, entry.message]) for entry in job.logs[-MAX_LOGS:]]
    unique = "" if job.unique_key is None else "=" + job.unique_key
    return [
        job.name,
        priority,
        unique,
        exact_number(job.run_at),
        len(logs),
        len(fields) // 2,
        *logs,
        *fields,
    ]


def _options_json(job: Job) -> str:
    """Field o: the options that differ from their defaults."""
    options: dict[str, JSON] = {}
    if job.title is not None:
        options["t"] = job.title
    if job.attempts != 1:
        options["a"] = job.attempts
    if job.backoff != _DEFAULT_BACKOFF:
        options["b"] = job.backoff.to_dict()
    if job.timeout is not None:
        options["T"] = job.timeout
    return dumps_json(options)


def _rare_fields(job: Job) -> list[str]:
    """The fields a new job seldom has, as field/value pairs."""
    optional: list[tuple[str, str | None]] = [
        ("m", str(job.attempts_made) if job.attempts_made else None),
        ("x", str(job.stalls) if job.stalls else None),
        ("b", None if job.started_at is None else exact_number(job.started_at)),
        ("e", None if job.finished_at is None else exact_number(job.finished_at)),
        ("g", exact_number(job.progress) if job.progress else None),
        ("G", job.progress_message),
        ("R", None if job.result is None else dumps_json(job.result)),
        ("E", None if job.error is None else dumps_json(job.error.to_dict())),
        ("C", "1" if job.cancel_requested else None),
        ("D", job.dispatcher),
        ("H", history_json(job.history) if job.history else None),
    ]
    return [item for key, text in optional if text is not None for item in (key, text)]


def flow_fields(job: Job) -> list[str]:
    """A flow job's fields, as field/value pairs: F flow id, A its dependencies, N its
    dependents (each a JSON list of ``[job_id, on_failure]``), Y the outcomes delivered (a
    JSON object), Z how many dependencies have no outcome yet. submit.lua stores a job with A
    blocked and replaces every ``"@k"`` in F, A and N by the id of the batch's k-th job."""
    optional: list[tuple[str, str | None]] = [
        ("F", job.flow_id),
        ("A", _edges_json(job.depends_on)),
        ("N", _edges_json(job.dependents)),
        ("Y", dumps_json(job.dependency_outcomes) if job.dependency_outcomes else None),
        ("Z", str(len(pending)) if (pending := _pending(job)) else None),
    ]
    return [item for key, text in optional if text is not None for item in (key, text)]


def _pending(job: Job) -> set[str]:
    """The dependencies without an outcome yet: field Z counts them, so that a delivery
    knows without decoding the outcomes whether it was the last (lua/lib/flows.lua)."""
    return {edge.job_id for edge in job.depends_on} - job.dependency_outcomes.keys()


def _edges_json(edges: Sequence[Dependency]) -> str | None:
    return dumps_json([edge.to_list() for edge in edges]) if edges else None


def _edges(text: str) -> tuple[Dependency, ...]:
    """Field A or N: a JSON list of ``[job_id, on_failure]``."""
    return parse_dependencies(json.loads(text))


def decode_job(reply: Sequence[Reply]) -> Job:
    """Build a Job from a script's ``{id, fields, logs[, lease deadline]}`` (the deadline
    comes with active jobs only); anything malformed raises CorruptJobError naming the job."""
    job_id = as_text(reply[0])
    try:
        if not isinstance(reply[1], list):
            raise CorruptJobError("the key is not a hash")
        f = _fields(reply[1])
        options = json.loads(f["o"]) if "o" in f else {}
        if not isinstance(options, dict):
            raise CorruptJobError("options are not a JSON object")
        error = json.loads(f["E"]) if "E" in f else None
        created = float(f.get("c", "0"))
        logs = []
        for text in cast("list[Reply]", reply[2]):
            at, message = json.loads(as_text(text))
            logs.append(JobLog(float(at), str(message)))
        state = STATES[f["s"]]
        history = [Attempt.from_dict(a) for a in json.loads(f["H"])] if "H" in f else []
        job = Job(
            id=job_id,
            name=f["n"],
            data=loads_stored(f["d"], "field 'd' (data)") if "d" in f else None,
            title=options.get("t"),
            state=state,
            priority=int(f.get("p", "0")),
            attempts=int(options.get("a", 1)),
            attempts_made=int(f.get("m", "0")),
            stalls=int(f.get("x", "0")),
            backoff=Backoff.parse(options.get("b")),
            timeout=None if options.get("T") is None else float(options["T"]),
            unique_key=f.get("u"),
            created_at=created,
            run_at=float(f["r"]) if "r" in f else created,
            started_at=float(f["b"]) if "b" in f else None,
            finished_at=float(f["e"]) if "e" in f else None,
            progress=float(f.get("g", "0")),
            progress_message=f.get("G"),
            result=loads_stored(f["R"], "field 'R' (result)") if "R" in f else None,
            error=None if error is None else JobError(**error),
            logs=logs,
            cancel_requested=f.get("C") == "1",
            # A COMPLETED job keeps D only for its implicit last record (below).
            dispatcher=None if state is JobState.COMPLETED else f.get("D"),
            history=history,
            lease_expires_at=(
                float(as_text(reply[3])) if state is JobState.ACTIVE and len(reply) > 3 else None
            ),
        )
        if "A" in f or "N" in f or "F" in f or "Y" in f:  # a flow's job (other jobs: 4 lookups)
            _read_flow(job, f)
        if state is JobState.COMPLETED and job.finished_at is not None:
            # The completion's record is not stored (record_completion in lua/lib/history.lua): the
            # job's own fields say it all, and leaving it out keeps the hash compact.
            last = Attempt(
                number=job.attempts_made,
                dispatcher=f.get("D"),
                started_at=job.started_at,
                finished_at=job.finished_at,
                outcome=AttemptOutcome.COMPLETED,
            )
            job.history = [*history, last][-MAX_HISTORY:]
        return job
    except CorruptJobError as exc:
        raise CorruptJobError(f"stored job {job_id} is malformed: {exc}") from exc
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        RecursionError,  # a deep value in a field decoded without loads_stored
        InvalidOptionError,
    ) as exc:
        raise CorruptJobError(f"stored job {job_id} is malformed ({exc!r})") from exc


def _read_flow(job: Job, f: dict[str, str]) -> None:
    """A flow job's fields, from its hash's F, A, N and Y."""
    job.flow_id = f.get("F")
    job.depends_on = _edges(f["A"]) if "A" in f else ()
    job.dependents = _edges(f["N"]) if "N" in f else ()
    job.dependency_outcomes = _outcomes(f["Y"]) if "Y" in f else {}


def _outcomes(text: str) -> dict[str, JSON]:
    """Field Y: the dependencies' outcomes, a JSON object by job id."""
    outcomes = loads_stored(text, "field 'Y' (dependency outcomes)")
    if not isinstance(outcomes, dict):
        raise CorruptJobError("dependency outcomes are not a JSON object")
    return outcomes


def unreadable_row(reply: Sequence[Reply], reason: str) -> Job:
    """``unreadable_job`` for a listing's row that ``decode_job`` refused: its id, and its
    name and state when those fields still read."""
    fields: dict[str, str] = {}
    with contextlib.suppress(CorruptJobError, TypeError, ValueError, IndexError):
        fields = _fields(cast("list[Reply]", reply[1]))
    job_id = reply[0].decode(errors="replace") if isinstance(reply[0], bytes) else str(reply[0])
    state = STATES.get(fields.get("s", ""))
    return unreadable_job(job_id, fields.get("n"), state and state.value, reason)


def history_json(history: Sequence[Attempt]) -> str:
    """Field H: the records as ``Attempt.to_dict`` gives them, each starting with its
    ``"number"`` key -- ``record_attempt`` in ``lua/lib/history.lua`` finds the records by
    that start."""
    return dumps_json([attempt.to_dict() for attempt in history[-MAX_HISTORY:]])


def _fields(raw: list[Reply]) -> dict[str, str]:
    """A hash's flat field/value reply as a dict of text: one pass when every item is
    UTF-8 bytes, else item by item, raising the same errors as ever."""
    if len(raw) % 2 == 0:
        try:
            items = map(bytes.decode, cast("list[bytes]", raw))
            return dict(zip(items, items, strict=True))
        except (TypeError, UnicodeDecodeError):
            pass
    return {as_text(raw[i]): as_text(raw[i + 1]) for i in range(0, len(raw), 2)}


def exact_number(value: float) -> str:
    """Exact text of a number (repr round-trips a float; Lua never re-formats it)."""
    number = float(value)
    if not math.isfinite(number):
        raise InvalidOptionError(f"expected a finite number, got {value!r}")
    return repr(number)


def as_text(value: object) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise CorruptJobError(f"stored text is not UTF-8 ({exc})") from exc
    if isinstance(value, (str, int)):
        return str(value)
    raise CorruptJobError(f"expected text, got {type(value).__name__}")
