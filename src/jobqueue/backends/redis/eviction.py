"""The eviction-policy check, and the URL parameter that turns it off.

At first use each backend (sync and asyncio) reads ``CONFIG GET maxmemory-policy`` once and
warns when Redis may evict keys. A Redis user whose ACL denies CONFIG gets the denial
swallowed here, but Redis still writes it to its ACL LOG, where security teams alert on it:
``?check_eviction=false`` in the URL skips the command altogether.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobqueue.backends.redis.codec import as_text
from jobqueue.errors import InvalidURLError

log = logging.getLogger("jobqueue.backends.redis")

CHECK_EVICTION = "check_eviction"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def pop_check_eviction(url: str) -> tuple[str, bool]:
    """``url`` without its ``check_eviction`` parameter, and whether the check is on (the
    default). The rest of the URL is left as it was, for the URL parser to read."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, True  # malformed: the URL parser says why
    query = parse_qsl(parts.query, keep_blank_values=True)
    values = [value for key, value in query if key == CHECK_EVICTION]
    if not values:
        return url, True
    text = values[-1].strip().lower()
    if len(values) > 1 or text not in _TRUE + _FALSE:
        raise InvalidURLError(
            f"{CHECK_EVICTION}= takes true or false (once), got {', '.join(map(repr, values))}"
        )
    rest = urlencode([(key, value) for key, value in query if key != CHECK_EVICTION])
    return urlunsplit(parts._replace(query=rest)), text in _TRUE


def cannot_check(exc: Exception) -> None:
    """Log that the policy could not be read (an ACL user without CONFIG): not an error."""
    log.debug(
        "cannot read Redis's maxmemory-policy (%s); not checking it (?%s=false in the URL "
        "skips the command, and the ACL LOG entry a denial leaves)",
        exc,
        CHECK_EVICTION,
    )


def warn_if_evicting(reply: object) -> None:
    """Warn about a ``CONFIG GET maxmemory-policy`` reply that lets Redis evict keys: an
    evicted job is lost silently, an evicted idempotency or wake-up key (they have TTLs, so
    ``volatile-*`` evicts them too) breaks a resend or a wait."""
    values = reply.values() if isinstance(reply, dict) else [reply]
    for value in values:
        if isinstance(value, dict):  # Redis Cluster: one reply per node
            value = next(iter(value.values()), "")
        policy = as_text(value)
        if policy and policy != "noeviction":
            log.warning(
                "Redis's maxmemory-policy is %s: at maxmemory Redis would evict keys and jobs "
                "would vanish without a trace; set maxmemory-policy to noeviction (then a full "
                "Redis refuses new submits with BackendFullError and keeps every stored job); "
                "?%s=false in the URL skips this check",
                policy,
                CHECK_EVICTION,
            )
            return
