"""The storage seam (``jobqueue.backend.Backend``) on Redis: the guarded write ``apply`` and
the storage calls beside it, each one script call (``apply.lua``, ``scan.lua``,
``expired.lua``, ``delete.lua``, ``housekeep.lua``, ``annotate.lua``; pausing, forgetting
and counting have scripts of their own).

:class:`~jobqueue.backends.redis.RedisBackend` mixes them in. Nothing here decides a rule of
a job's life: the core hands ``apply`` its decided changes, this module encodes them
(``changeset.py``) and the script checks each guard and writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, cast

from jobqueue.backend import Applied
from jobqueue.backends.redis.changeset import apply_args, conflicts
from jobqueue.backends.redis.codec import (
    STATE_CODES,
    Arg,
    Reply,
    as_text,
    decode_job,
    exact_number,
    unreadable_row,
)
from jobqueue.backends.redis.foreign import decode_claim
from jobqueue.backends.redis.wire import (
    MAX_BATCH,
    counted_by_name,
    listed_jobs,
    optional,
    rows,
    token,
)
from jobqueue.changes import Change, ClaimAsk, Selector
from jobqueue.errors import CorruptJobError
from jobqueue.job import MAX_LOG_MESSAGE, MAX_LOGS, Job, JobState, dumps_json
from jobqueue.values import BackendOptions, Claim, WorkSpec, check_schedule_name

log = logging.getLogger("jobqueue.backends.redis")


def scan_args(
    selector: Selector, offset: int, limit: int, cutoff_arg: Callable[[float], str]
) -> list[Arg]:
    """scan.lua's arguments (``cutoff_arg`` turns ``finished_before`` into a time argument
    that stays in the past, as ``Calls.cutoff_arg`` does); the asyncio backend's too."""
    before = selector.finished_before
    return [
        STATE_CODES[selector.state],
        optional(selector.name),
        "" if before is None else cutoff_arg(before),
        max(offset, 0),
        max(limit, 0),
    ]


class _Calls(Protocol):
    def cutoff_arg(self, when: float) -> str: ...


class _Backend(Protocol):
    """What the mixin needs of the backend it is mixed into."""

    options: BackendOptions
    namespace: str
    server_clock: bool

    @property
    def calls(self) -> _Calls: ...

    def _run(self, script: str, args: Sequence[Arg]) -> Reply: ...

    def _fail_corrupt(self, job_id: str, token: str, exc: CorruptJobError) -> None: ...

    def _delay_arg(self, delay: float) -> str: ...

    def apply(self, changes: Sequence[Change], then: ClaimAsk | None = None) -> Applied: ...

    def _spec_args(self, spec: WorkSpec | None) -> list[Arg]: ...

    def _group_missing(self, spec_args: Sequence[Arg]) -> None: ...


class StorageCalls:
    """The storage seam's methods of ``RedisBackend`` (``insert`` and ``get`` are in
    backend.py, beside the plumbing they share)."""

    def claim_many(self: _Backend, spec: WorkSpec, limit: int) -> list[Claim]:
        # apply.lua with no change: due jobs promoted first, no stall recovery, no retention.
        return self.apply([], ClaimAsk(spec, limit))[1]

    def apply(self: _Backend, changes: Sequence[Change], then: ClaimAsk | None = None) -> Applied:
        spec = None if then is None else then.spec
        count = 0 if then is None else max(min(then.limit, MAX_BATCH), 0)
        if not changes and not count:
            return [], []
        tokens = [token() for _ in range(count)]
        lease = 0.0 if spec is None else spec.lease_seconds
        deadline = self.options.clock() + lease
        # Claim nothing when a change was not written (a repeat, a lost lease), if asked.
        unless = "1" if then is not None and then.unless_conflict else ""
        args: list[Arg] = [count, unless, *tokens, "+" + exact_number(lease)]
        spec_at = len(args)
        args += self._spec_args(spec)
        args += apply_args(changes, self._delay_arg)
        results, claimed, resent, missing_flag = rows(self._run("apply", args))
        missing = missing_flag in (1, b"1", "1")
        if missing:  # its name group was gone: stored again on the next claim
            self._group_missing(args[spec_at : spec_at + 3])
        claims: list[Claim] = []
        corrupt = 0
        for lease_token, reply in zip(tokens, cast("list[list[Reply]]", claimed), strict=False):
            try:
                claims.append(Claim(decode_claim(reply), lease_token, deadline))
            except CorruptJobError as exc:
                self._fail_corrupt(as_text(reply[0]), lease_token, exc)
                corrupt += 1
        if corrupt and spec is not None:  # one bad record never stops the queue: claim on
            claims += self.apply([], ClaimAsk(spec, corrupt))[1]
        elif missing and spec is not None:
            claims += self.apply([], ClaimAsk(spec, count - len(claims)))[1]
        return conflicts(changes, results, as_text(resent) == "1"), claims

    def _delay_arg(self: _Backend, delay: float) -> str:
        # On the server's clock a delay already past is "now", as time_arg makes it.
        return exact_number(max(delay, 0.0) if self.server_clock else delay)

    def annotate(
        self: _Backend,
        job_id: str,
        token: str,
        *,
        progress: tuple[float, str | None] | None = None,
        log: str | None = None,
    ) -> bool:
        value = message = entry = ""
        if progress is not None:
            value = exact_number(progress[0])
            message = "" if progress[1] is None else "=" + progress[1][:MAX_LOG_MESSAGE]
        if log is not None:
            # The line's time is a record of when the client logged it: the client's clock.
            entry = dumps_json([self.options.clock(), log[:MAX_LOG_MESSAGE]])
        return bool(self._run("annotate", [job_id, token, value, message, entry, MAX_LOGS]))

    def delete(self: _Backend, job_ids: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(job_ids), MAX_BATCH):  # keeps each call short
            batch = list(job_ids[start : start + MAX_BATCH])
            deleted += int(as_text(self._run("delete", [len(batch), *batch])))
        return deleted

    def set_paused(
        self: _Backend, kind: Literal["worker", "schedule"], name: str, paused: bool
    ) -> None:
        if kind == "schedule":
            self._run("schedule_pause", [check_schedule_name(name), "1" if paused else ""])
        else:
            self._run("pause" if paused else "resume", [name])

    def forget(self: _Backend, kind: Literal["dispatcher", "schedule"], name: str) -> bool:
        if kind == "schedule":
            return bool(self._run("schedule_remove", [check_schedule_name(name)]))
        return bool(self._run("remove_dispatcher", [name]))

    def housekeep(self: _Backend) -> int:
        moved = 0
        while True:  # one batch per call, so no call runs long
            count, more = rows(self._run("housekeep", []))
            moved += int(as_text(count))
            if not int(as_text(more)):
                return moved

    def scan(self: _Backend, selector: Selector, offset: int, limit: int) -> list[Job]:
        args = scan_args(selector, offset, limit, self.calls.cutoff_arg)
        return listed_jobs(self._run("scan", args), self.namespace)

    def expired(self: _Backend, limit: int) -> list[Claim]:
        found: list[Claim] = []
        for item in rows(self._run("expired", [max(int(limit), 0)])):
            raw_token, raw_job = rows(item)
            snapshot = rows(raw_job)
            try:
                job = decode_job(snapshot)
            except CorruptJobError as exc:  # reported as it reads: the core fails or moves it
                log.warning("expired lease of a corrupt job in %s: %s", self.namespace, exc)
                job = unreadable_row(snapshot, str(exc))
            deadline = float(as_text(snapshot[3])) if len(snapshot) > 3 else 0.0
            found.append(Claim(job, as_text(raw_token), deadline))
        return found

    def counts(self: _Backend) -> dict[str, dict[JobState, int]]:
        return counted_by_name(self._run("count_by_name", []))
