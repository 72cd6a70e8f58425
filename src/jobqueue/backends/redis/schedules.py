"""The Redis backend's periodic schedules: ``claim_tick``, pausing, resuming and removing a
schedule, and the schedule reads, each a script of its own.

:class:`~jobqueue.backends.redis.RedisBackend` mixes them in; they only build script arguments
and decode replies. ``claim_tick.lua`` does the work in one step: the schedule's record, its
recent ticks and the tick's job (stored by ``store_job``, the very code ``submit.lua`` runs)
all live under the namespace's hash tag, so the script runs on one shard of a cluster too.
Each claim carries an id of its own: sent again after a lost reply (by the backend, or by
redis-py's own retries), it is answered with what its first run did, job included.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from jobqueue import lifecycle as policy
from jobqueue.backend import (
    ScheduleRecord,
    TickClaim,
    TickEntry,
    TickOutcome,
    TickResult,
    check_schedule_name,
)
from jobqueue.backends.redis.codec import (
    STATE_CODES,
    STATES,
    Arg,
    Reply,
    as_text,
    encode_new_job,
    exact_number,
)
from jobqueue.backends.redis.wire import rows
from jobqueue.errors import CorruptJobError
from jobqueue.job import JobState

if TYPE_CHECKING:
    from jobqueue.backends.redis.calls import Calls

_OUTCOMES = {
    "s": TickOutcome.SUBMITTED,
    "r": TickOutcome.RECORDED,
    "c": TickOutcome.ALREADY_CLAIMED,
    "o": TickOutcome.OVERLAP_SKIPPED,
    "p": TickOutcome.PAUSED,
}


class _Scripts(Protocol):
    """What the mixin needs of the backend it is mixed into."""

    def _run(self, script: str, args: Sequence[Arg]) -> Reply: ...

    @property
    def calls(self) -> Calls: ...


class ScheduleCalls:
    """``claim_tick`` and the schedule calls for ``RedisBackend``."""

    def claim_tick(self: _Scripts, claim: TickClaim) -> TickResult:
        args: list[Arg] = [
            claim.schedule,
            secrets.token_hex(8),  # this call's id: a resend is answered as the first run
            exact_number(claim.tick),
            claim.definition,
            claim.missed,
            # The states of the previous tick's job that skip this one, as the core decides.
            "".join(sorted(STATE_CODES[s] for s in policy.blocking_states(claim.overlap))),
            policy.SCHEDULE_TICKS_KEPT,
        ]
        if claim.job is None:
            args.append("")
        else:
            fields = encode_new_job(claim.job)  # as submit: a refused job changes nothing
            fields[3] = self.calls.time_arg(claim.job.run_at)
            args += ["1", *fields]
        reply = rows(self._run("claim_tick", args))
        outcome = _OUTCOMES[as_text(reply[0])]
        if outcome is not TickOutcome.SUBMITTED:
            return TickResult(outcome)
        assert claim.job is not None
        state = STATES.get(as_text(reply[2]), JobState.WAITING)
        job = replace(claim.job, id=as_text(reply[1]), state=state, logs=list(claim.job.logs))
        return TickResult(outcome, job)

    def schedule_records(self: _Scripts, name: str | None = None) -> list[ScheduleRecord]:
        which = "" if name is None else "=" + check_schedule_name(name)
        return sorted(schedule_records(self._run("schedules", [which])), key=lambda r: r.name)


def schedule_records(reply: Reply) -> list[ScheduleRecord]:
    """schedules.lua's reply as records; a record that cannot be read (foreign data) raises
    ``CorruptJobError`` naming the schedule."""
    records = []
    for item in rows(reply):
        raw_name, raw_fields, raw_ticks = rows(item)
        name = as_text(raw_name)
        try:
            fields = rows(raw_fields)
            f = {as_text(fields[i]): as_text(fields[i + 1]) for i in range(0, len(fields), 2)}
            recent = []
            for text in rows(raw_ticks):
                at, letter, job_id = as_text(text).split(" ")
                recent.append(TickEntry(float(at), _OUTCOMES[letter], job_id or None))
            records.append(
                ScheduleRecord(
                    name=name,
                    definition=f.get("d", ""),
                    last_tick=float(f["t"]) if "t" in f else None,
                    last_job_id=f.get("j"),
                    paused=f.get("p") == "1",
                    missed=int(f.get("m", "0")),
                    skipped=int(f.get("k", "0")),
                    updated_at=float(f.get("u", "0")),
                    recent=tuple(recent),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptJobError(f"stored schedule {name!r} is malformed ({exc!r})") from exc
    return records
