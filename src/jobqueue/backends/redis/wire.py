"""What goes over the wire to the scripts and comes back: the arguments of a call, and each
script's reply decoded into typed values. Shared by the sync and the asyncio backends, so
both speak to one queue in exactly the same way. The job hash itself is ``codec.py``'s.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import NamedTuple, cast

from jobqueue.backend import DispatcherInfo, LeaseStatus, WorkSpec
from jobqueue.backends.redis.codec import (
    STATES,
    Arg,
    Reply,
    as_text,
    decode_job,
    encode_new_job,
    exact_number,
    unreadable_row,
)
from jobqueue.backends.redis.connection import Lane
from jobqueue.dependency import Dependency
from jobqueue.errors import CorruptJobError
from jobqueue.job import Job, JobState, dumps_json

log = logging.getLogger("jobqueue.backends.redis")

SUBMIT_BATCH = 500  # jobs per submit script call: keeps each call short for the server
MAX_BATCH = 1000  # claims per apply call; also the ids per delete call


# -- arguments --------------------------------------------------------------------------------


def submit_batches(
    jobs: Sequence[Job], time_arg: Callable[[float], str], lane: Lane
) -> Iterator[tuple[Sequence[Job], list[Arg]]]:
    """The submit script's calls: each batch of jobs with its arguments, ``time_arg`` turning
    each ``run_at`` into the script's time argument. Every job is encoded before the first
    batch is handed out, so bad data is refused before anything is stored. Each batch is a
    call of ``lane`` (held by the caller until the last batch is answered), numbered as it
    is handed out: sent again after a lost reply, it returns the ids the first send stored.
    A flow (jobs naming each other as ``"@k"``) goes whole in one call, whatever its size:
    the references are translated, and the flow stored, in one step."""
    encoded = [encode_new_job(job) for job in jobs]
    flow = is_flow(jobs)
    size = max(len(jobs), 1) if flow else SUBMIT_BATCH
    for start in range(0, len(jobs), size):
        lane.calls += 1
        batch = encoded[start : start + size]
        args: list[Arg] = [lane.id, lane.calls, len(batch), "1" if flow else ""]
        for job, fields in zip(jobs[start : start + size], batch, strict=True):
            fields[3] = time_arg(job.run_at)
            args.extend(fields)
        yield jobs[start : start + size], args


def is_flow(jobs: Sequence[Job]) -> bool:
    """Whether ``jobs`` hold a flow's jobs, which name each other as ``"@k"`` (and keep
    their outcomes in a hash of their own: submit.lua's flow mode stores them)."""
    return any(
        job.flow_id is not None or job.depends_on or job.dependents or job.dependency_outcomes
        for job in jobs
    )


def lease_arg(spec: WorkSpec) -> str:
    """The lease length as a script time argument: the deadline is the script's now plus it."""
    return "+" + exact_number(spec.lease_seconds)


def dispatcher_record(info: DispatcherInfo, leases: Sequence[tuple[str, str]]) -> str:
    """What the dispatcher hash keeps (last_seen apart: the script writes its "now")."""
    return dumps_json(
        {
            "host": info.host,
            "pid": info.pid,
            "names": list(info.names),
            "concurrency": info.concurrency,
            "started_at": info.started_at,
            "jobs": [job_id for job_id, _ in leases],
        }
    )


def optional(name: str | None) -> str:
    """A script argument that may be absent: '' for none, else '=' and the text."""
    return "" if name is None else "=" + name


def token() -> str:
    """A new lease (or waiter) token."""
    return secrets.token_hex(8)


# -- replies ----------------------------------------------------------------------------------


def rows(reply: Reply) -> list[Reply]:
    """A reply that is a list (a Lua table), as our scripts answer."""
    return cast("list[Reply]", reply)


def submitted_jobs(jobs: Sequence[Job], replies: Reply) -> list[Job]:
    """The stored jobs (or, for a unique key already held, the live job holding it). A job
    ``build_job`` made for this submit (it carries ``_submit_json``) is nobody else's: it is
    filled in and returned itself; any other is copied, the caller's left as it was."""
    out: list[Job] = []
    for job, reply in zip(jobs, cast("list[list[Reply]]", replies), strict=True):
        if as_text(reply[0]) == "n":
            state = STATES[as_text(reply[2])]
            if getattr(job, "_submit_json", None) is None:
                out.append(replace(job, id=as_text(reply[1]), state=state, logs=list(job.logs)))
            else:
                del job._submit_json  # stored: the job returned carries no submit state
                job.id, job.state = as_text(reply[1]), state
                out.append(job)
        else:
            out.append(replace(decode_job(reply[1:]), deduplicated=True))
    if is_flow(jobs):
        ids = [job.id for job in out]
        for job, reply in zip(out, cast("list[list[Reply]]", replies), strict=True):
            if as_text(reply[0]) == "n":
                translate_references(job, ids)
    return out


def translate_references(job: Job, ids: Sequence[str]) -> None:
    """As submit.lua stored them: every ``"@k"`` in a flow job's ``flow_id`` and edges
    replaced by ``ids[k]``, the id the call's k-th job got."""

    def resolved(ref: str) -> str:
        if (
            ref.startswith("@")
            and ref[1:].isascii()
            and ref[1:].isdigit()
            and int(ref[1:]) < len(ids)
        ):
            return ids[int(ref[1:])]
        return ref

    if job.flow_id is not None:
        job.flow_id = resolved(job.flow_id)
    job.depends_on = tuple(Dependency(resolved(d.job_id), d.on_failure) for d in job.depends_on)
    job.dependents = tuple(Dependency(resolved(d.job_id), d.on_failure) for d in job.dependents)


def listed_jobs(reply: Reply, namespace: str) -> list[Job]:
    jobs = []
    for row in cast("list[list[Reply]]", reply):
        try:
            jobs.append(decode_job(row))
        except CorruptJobError as exc:  # a listing shows it, marked; get() raises
            log.warning("listing a corrupt job in namespace %s: %s", namespace, exc)
            jobs.append(unreadable_row(row, str(exc)))
    return jobs


def counted_by_name(reply: Reply) -> dict[str, dict[JobState, int]]:
    """count_by_name.lua's flat reply (name, then its state letter/count pairs) as a mapping
    with every state present; a letter that is no state (foreign data) is left out."""
    flat = rows(reply)
    counts: dict[str, dict[JobState, int]] = {}
    for i in range(0, len(flat), 2):
        by_state = dict.fromkeys(JobState, 0)
        pairs = rows(flat[i + 1])
        for k in range(0, len(pairs), 2):
            state = STATES.get(as_text(pairs[k]))
            if state is not None:
                by_state[state] = int(as_text(pairs[k + 1]))
        if any(by_state.values()):
            counts[as_text(flat[i])] = by_state
    return counts


def live_dispatchers(reply: Reply) -> list[DispatcherInfo]:
    """The dispatchers script's flat (id, record JSON, last seen) reply, oldest first."""
    flat = rows(reply)
    found = []
    for i in range(0, len(flat), 3):
        try:
            record = json.loads(as_text(flat[i + 1]))
            found.append(
                DispatcherInfo(
                    id=as_text(flat[i]),
                    host=str(record["host"]),
                    pid=int(record["pid"]),
                    names=tuple(record["names"]),
                    concurrency=int(record["concurrency"]),
                    started_at=float(record["started_at"]),
                    last_seen=float(as_text(flat[i + 2])),
                    jobs=tuple(record["jobs"]),
                )
            )
        except (CorruptJobError, KeyError, TypeError, ValueError) as exc:
            log.warning("skipping unreadable dispatcher record %r: %s", flat[i], exc)
    return sorted(found, key=lambda info: (info.started_at, info.id))


def lease_statuses(reply: Reply) -> list[LeaseStatus]:
    """heartbeat.lua's reply: one status per lease, in the order sent."""
    return [LeaseStatus(as_text(s)) for s in rows(reply)]


class Idle(NamedTuple):
    """idle.lua's reply: ``c`` claimed at once (``detail`` the job), ``r`` ready work it may
    not claim, else registered as a waiter (``detail`` seconds until the next job comes due
    or lease expires, '' for none)."""

    kind: str
    detail: Reply


def idle(reply: Reply) -> Idle:
    items = rows(reply)
    return Idle(as_text(items[0]), items[1] if len(items) > 1 else None)


def inbox_message(message: Reply) -> tuple[str, Reply]:
    """An inbox message: ``'w'`` (woken) or a handed job's snapshot as JSON."""
    return ("woken", None) if message in (b"w", "w") else ("handed", message)


def watched(reply: Reply) -> tuple[str, Job | None]:
    """watch.lua's reply: ``wait`` (registered), ``done`` and the finished job, or ``gone``."""
    items = rows(reply)
    state = as_text(items[0])
    return state, decode_job(rows(items[1])) if state == "done" else None
