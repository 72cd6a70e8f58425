"""The storage seam's guarded write on the wire: ``Change``s encoded flat for ``apply.lua``
and its reply decoded (a ``Conflict`` per refused change).

The Lua only compares and writes strings: every value a change sets is encoded here with the
codec the job hash uses (``codec.py``), so what ``apply`` writes reads back exactly as what
the old verbs wrote. The argument layout is described at the top of ``lua/apply.lua``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from jobqueue.backends.redis.codec import STATE_CODES, STATES, Arg, Reply, as_text, exact_number
from jobqueue.backends.redis.wire import rows
from jobqueue.changes import SETTABLE_FIELDS, Change, Conflict, Delivery, Expired, Held, InState
from jobqueue.job import JSON, AttemptOutcome, JobError, JobState, dumps_json

# The call that ended a lease, as field K stores it (one letter, as the old verbs wrote it,
# so a namespace written by them answers the same); another name is stored as it is.
ENDED_LETTERS = {
    "complete": "c",
    "fail": "f",
    "release": "r",
    "snooze": "z",
    "finish_cancelled": "x",
}
ENDED_CALLS = {letter: call for call, letter in ENDED_LETTERS.items()}
# The outcome counts' field letters (``P o:MINUTE``, see operations.py).
COUNTED_LETTERS = {
    AttemptOutcome.COMPLETED: "c",
    AttemptOutcome.FAILED: "f",
    AttemptOutcome.RETRIED: "r",
    AttemptOutcome.CANCELLED: "x",
}


_CANCEL_ARGS = {None: "", True: "1", False: "0"}
_OUTCOMES = {outcome: outcome.value for outcome in AttemptOutcome}  # no enum lookup per call


def change_args(change: Change, delay_arg: Callable[[float], str]) -> list[Arg]:
    """One change's arguments for apply.lua; ``delay_arg`` turns ``run_at`` (a delay) into
    the script's seconds from its now. (Every job's outcome passes here: kept lean.)"""
    guard = change.guard
    if type(guard) is InState:
        if change.to is JobState.ACTIVE and guard.states != {JobState.ACTIVE}:
            raise ValueError("only a claim makes a job active: InState({ACTIVE}) -> ACTIVE")
        kind, arg, cancel = "s", "".join(sorted(STATE_CODES[s] for s in guard.states)), None
    else:
        assert isinstance(guard, (Held, Expired))
        kind = "h" if type(guard) is Held else "e"
        arg, cancel = guard.token, guard.cancel_requested
    ended = change.ended
    counted = change.counts_as
    counts = "" if counted is None else COUNTED_LETTERS.get(counted)
    if counts is None:
        raise ValueError(f"outcomes counted: completed, failed, retried, cancelled; not {counted}")
    ends = change.ends_lease
    run_at = change.run_at
    args: list[Arg] = [
        change.job_id,
        kind,
        arg,
        _CANCEL_ARGS[cancel],
        STATE_CODES[change.to],
        "" if run_at is None else delay_arg(run_at),
    ]
    if ended is None:
        args += ("", "", "1")
    else:
        error = ended.error
        args += (
            _OUTCOMES[ended.outcome],
            "" if error is None else dumps_json(error.to_dict()),
            "1" if ended.counted else "0",
        )
    fields = change.set
    deliver = change.deliver
    args += ("" if ends is None else ENDED_LETTERS.get(ends, ends), "1" if change.fence else "")
    args += (counts, len(fields) if deliver is None else len(fields) + 3)
    for name, value in fields.items():
        if name not in SETTABLE_FIELDS:
            raise ValueError(f"a change may not set {name!r} (settable: {sorted(SETTABLE_FIELDS)})")
        args += (_FIELDS[name], _encoded(name, value))
    if deliver is not None:
        args += delivery_pairs(deliver)
    return args


def delivery_pairs(deliver: Delivery) -> tuple[Arg, ...]:
    """A flow's delivery as apply.lua reads it (lua/lib/flows.lua): three pairs after the
    change's fields, '@' the dependency's id, '@s' the state letters it must be in, '@o' its
    outcome's JSON, stored as is among the dependent's outcomes."""
    states = "".join(sorted(STATE_CODES[s] for s in deliver.states))
    return ("@", deliver.from_id, "@s", states, "@o", dumps_json(dict(deliver.outcome)))


_FIELDS = {
    "result": "R",
    "error": "E",
    "stalls": "x",
    "attempts_made": "m",
    "cancel_requested": "C",
    "finished_at": "e",
    "dependency_outcomes": "Y",
}


def _encoded(name: str, value: object) -> str:
    """A settable field's value as the job hash stores it (see codec.py); '' when the
    value is the field's default, which the hash keeps by leaving the field out."""
    if name == "result":
        return "" if value is None else dumps_json(cast("JSON", value))
    if name == "error":
        if value is None:
            return ""
        if not isinstance(value, JobError):
            raise TypeError(f"error must be a JobError or None, got {value!r}")
        return dumps_json(value.to_dict())
    if name in ("stalls", "attempts_made"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        return str(value) if value else ""
    if name == "cancel_requested":
        return "1" if value else ""
    if name == "dependency_outcomes":
        if not isinstance(value, dict):
            raise TypeError(f"dependency_outcomes must be a dict, got {value!r}")
        return dumps_json(value) if value else ""
    if value is None:  # finished_at
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    return exact_number(value)


def apply_args(changes: Sequence[Change], delay_arg: Callable[[float], str]) -> list[Arg]:
    """The changes' part of apply.lua's arguments: their count, then each one's."""
    args: list[Arg] = [len(changes)]
    for change in changes:
        args += change_args(change, delay_arg)
    return args


def changed_ids(args: Sequence[Arg]) -> list[str]:
    """The job ids of the changes in an apply call's arguments (as ``seam.apply`` builds
    them: the claim part, then ``apply_args``), for messages about the call."""
    limit = int(cast("int", args[0]))
    i = limit + 6 + 2 * int(cast("int", args[limit + 5]))  # past the claim part
    ids: list[str] = []
    for _ in range(int(cast("int", args[i]))):
        ids.append(as_text(cast("bytes", args[i + 1])))
        i += 13 + 2 * int(cast("int", args[i + 13]))
    return ids


def conflicts(
    changes: Sequence[Change], reply: Reply, resent: bool = False
) -> list[Conflict | None]:
    """apply.lua's per-change results: ``None`` (written) or the ``Conflict``. For a resend
    after a lost reply (``resent``), a change the conflict shows done -- its lease ended by
    this token's very call, or the job in the state the change moves it to -- was written by
    the first run, and is answered as that run answered it: written."""
    out: list[Conflict | None] = []
    for change, item in zip(changes, rows(reply), strict=True):
        if not isinstance(item, list):
            out.append(None)
            continue
        state, held, ended, cancel, holder = (as_text(v) for v in item)
        conflict = Conflict(
            state=STATES.get(state),  # '' (no job), or foreign data: no job of ours
            held=held == "1",
            ended_by=ENDED_CALLS.get(ended, ended) or None,
            cancel_requested=cancel == "1",
            unique_holder=holder or None,
        )
        out.append(None if resent and _done(change, conflict) else conflict)
    return out


def _done(change: Change, conflict: Conflict) -> bool:
    """Whether ``conflict`` shows ``change`` written (by the first run of a resent call)."""
    if change.ends_lease is not None:
        return conflict.ended_by == change.ends_lease
    if change.deliver is not None and change.to is JobState.WAITING:
        return conflict.state in _RELEASED  # the last outcome moved it: waiting or delayed
    return conflict.state is change.to and not conflict.held


_RELEASED = frozenset({JobState.WAITING, JobState.DELAYED})
