"""Foreign data under a namespace's job keys, as a claim meets it.

A waiting id whose key holds something else than a whole job hash of ours (a string ``SET``
over it, a hash lacking its state, name or creation time) is claimed all the same by the
script, which recounts the name's waiting jobs and answers ``{id, 'corrupt', reason}``
(``claim_job`` in lua/lib/leases.lua); the backend then logs it and fails it with a CorruptJobError
under the name of the list it came from, so the job shows up, failed, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobqueue.backends.redis.codec import Reply, as_text, decode_job
from jobqueue.errors import CorruptJobError
from jobqueue.job import Job


def decode_claim(reply: Sequence[Reply]) -> Job:
    """A claimed job (``decode_job``); CorruptJobError with the script's reason when the
    script found no whole job under the id."""
    if len(reply) > 2 and isinstance(reply[1], (bytes, str)) and as_text(reply[1]) == "corrupt":
        raise CorruptJobError(f"stored job {as_text(reply[0])} is malformed: {as_text(reply[2])}")
    return decode_job(reply)
