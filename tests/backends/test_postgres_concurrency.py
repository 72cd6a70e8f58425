"""Several real processes on one schema: claimers (one job a claim with complete-and-claim-next,
and batches) while others submit one by one. Every job is claimed exactly once -- never by two
processes, never twice by one while its lease holds -- none is lost, and the counts (per-statement
deltas, migration 2) add up to what happened."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from jobqueue.backend import BackendOptions
from jobqueue.backends.postgres import PostgresBackend
from jobqueue.job import Job, JobState
from tests.backends.postgres_fixtures import drop_schema, new_schema, postgres_url

__all__ = ["postgres_url"]

pytestmark = pytest.mark.postgres

WORKER = Path(__file__).with_name("postgres_process_worker.py")
UPFRONT = 300
SUBMITTERS, EACH = 2, 100
CLAIMERS = (("1", 2), ("5", 2))  # (batch, processes)


def run_released_together(commands: list[list[str]]) -> list[list[str]]:
    """Start one worker process per command, release them all at once when every one is ready
    (so they race), and return each one's output lines; any still running is killed."""
    children = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = []
        for child in children:
            out, _ = child.communicate(timeout=300)
            assert child.returncode == 0, out
            outputs.append(out.splitlines())
        return outputs
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.mark.parametrize("served", ["c", "c,d,e"])
def test_processes_claiming_from_one_schema_run_each_job_once_and_lose_none(
    postgres_url: str, served: str
) -> None:
    """``served`` "c,d,e": claims across more names than the seeks cover read their
    candidates without a lock; the claim itself must then find the job still waiting (a job
    was once claimed twice here: by another process, and again after its claim committed)."""
    schema = new_schema()
    url = f"{postgres_url}?schema={schema}"
    total = UPFRONT + SUBMITTERS * EACH
    backend = PostgresBackend(url, BackendOptions())
    try:
        upfront = backend.insert(
            [
                Job(id="", name="c", data={"n": n}, created_at=1.0, run_at=1.0)
                for n in range(UPFRONT)
            ]
        )
        commands = [["submit-many", url, "c", str(EACH)] for _ in range(SUBMITTERS)]
        for batch, processes in CLAIMERS:
            commands += [["claim", url, served, str(total), batch] for _ in range(processes)]
        outputs = run_released_together(commands)
        submitted = [job.id for job in upfront]
        for out in outputs[:SUBMITTERS]:
            submitted += json.loads(out[-1])
        claimed = [line.split()[0] for out in outputs[SUBMITTERS:] for line in out]
        assert len(set(submitted)) == total
        assert sorted(claimed) == sorted(submitted)  # each exactly once, none lost
        counts = backend.counts()["c"]
        assert counts[JobState.COMPLETED] == total
        assert counts[JobState.WAITING] == counts[JobState.ACTIVE] == 0
        assert backend.housekeep() == 0  # folding the deltas keeps them right
        assert backend.counts()["c"][JobState.COMPLETED] == total
    finally:
        backend.close()
        drop_schema(postgres_url, schema)


def test_a_cap_holds_across_processes_claiming_side_by_side(postgres_url: str) -> None:
    """``max_active`` 1 on every claimer: the jobs ran one after another (each one's time held
    after the previous one's, on the machine's monotonic clock), whichever process ran them."""
    schema = new_schema()
    url = f"{postgres_url}?schema={schema}"
    total = 60
    backend = PostgresBackend(url, BackendOptions())
    try:
        backend.insert(
            [Job(id="", name="c", data={}, created_at=1.0, run_at=1.0) for _ in range(total)]
        )
        commands = [["claim", url, "c", str(total), batch, "1"] for batch in ("1", "3", "1")]
        ran = []  # (began, ended, id): inside each job's claim commit .. completion commit
        for out in run_released_together(commands):
            for line in out:
                job_id, start, end = line.split()
                ran.append((float(start), float(end), job_id))
        assert len({job_id for _, _, job_id in ran}) == len(ran) == total
        ran.sort()
        for (_, ended, _), (began, _, _) in pairwise(ran):
            assert ended <= began  # one after another, whichever process
    finally:
        backend.close()
        drop_schema(postgres_url, schema)


def test_processes_submitting_one_unique_key_at_once_store_one_job(postgres_url: str) -> None:
    """Submitters of the same unique keys side by side: one job per key, and every submitter
    is handed that job (deduplicated) -- the keys' holders are read under the schema's lock."""
    schema = new_schema()
    url = f"{postgres_url}?schema={schema}"
    count = 40
    backend = PostgresBackend(url, BackendOptions())
    backend.close()  # the schema, created once before the race
    try:
        commands = [["submit-unique", url, "u", str(count)] for _ in range(3)]
        seen = [json.loads(out[-1]) for out in run_released_together(commands)]
        assert seen[0] == seen[1] == seen[2]
        assert len(set(seen[0])) == count
        backend = PostgresBackend(url, BackendOptions())
        assert backend.counts()["u"][JobState.WAITING] == count
    finally:
        backend.close()
        drop_schema(postgres_url, schema)
