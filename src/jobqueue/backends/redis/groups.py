"""Name groups and the layout upgrade: what a claim or an idle wait sends to say which
worker names it serves.

A dispatcher may serve thousands of names. Sending them with every claim would cost each
claim as much as the names, so the set is stored once per server under a digest of it
(``lua/group.lua``) and every claim and wait sends the digest, plus only the names capped by
``max_active``. A script that finds the group gone (dropped by housekeeping after a day
unused, or lost with the server's data) says so; the caller stores it again and repeats.

Claims find the next job across names from the heads (see ``lua/lib/ready.lua``), which a
namespace written by 0.1 lacks: before its first claim or wait, each backend instance runs
``lua/layout.lua`` once, which builds them (and drops 0.1's per-name waiter lists) unless
the namespace is already at :data:`LAYOUT`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Protocol

from jobqueue.backend import WorkSpec
from jobqueue.backends.redis.codec import Arg, Reply

LAYOUT = "2"
"""The namespace layout this code writes (a namespace without the key is 0.1's: layout 1)."""


def group_digest(names: Sequence[str]) -> str:
    """The digest a set of names is stored under: the same set, in any order, the same."""
    text = json.dumps(sorted(set(names)), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


class _Backend(Protocol):
    _groups_stored: set[str]
    _group_cache: tuple[tuple[str, ...], str] | None
    _spec_cache: tuple[WorkSpec, list[Arg], str] | None
    _layout_checked: bool

    def _run(self, script: str, args: Sequence[Arg]) -> Reply: ...


class GroupCalls:
    """The name groups of ``RedisBackend``."""

    _groups_stored: set[str]
    _group_cache: tuple[tuple[str, ...], str] | None
    _spec_cache: tuple[WorkSpec, list[Arg], str] | None
    _layout_checked: bool

    def _spec_args(self: _Backend, spec: WorkSpec | None) -> list[Arg]:
        """A claim's spec as the scripts read it (``claim_spec``): the claiming dispatcher,
        the digest of its names' group (stored first if this backend has not stored it), the
        capped names and their caps. A dispatcher claims with one spec for its whole life:
        its arguments are built once (callers only read the list)."""
        if spec is None:
            return ["", "", 0]
        cached = self._spec_cache
        if cached is not None and cached[0] is spec and cached[2] in self._groups_stored:
            return cached[1]
        caps = [(name, cap) for name, cap in spec.max_active.items() if name in spec.names]
        digest = GroupCalls._group(self, spec.names)
        args: list[Arg] = [spec.dispatcher or "", digest, len(caps)]
        for name, cap in caps:
            args += [name, max(int(cap), 0)]
        self._spec_cache = (spec, args, digest)
        return args

    def _group(self: _Backend, names: tuple[str, ...]) -> str:
        """The digest of the group of ``names``, stored once per backend ('' for none)."""
        cached = self._group_cache
        if cached is not None and cached[0] is names:  # a dispatcher's spec never changes
            digest = cached[1]
        else:
            digest = group_digest(names) if names else ""
            self._group_cache = (names, digest)
        if digest and digest not in self._groups_stored:
            GroupCalls._check_layout(self)
            self._run("group", [digest, *dict.fromkeys(names)])
            self._groups_stored.add(digest)
        return digest

    def _group_missing(self: _Backend, spec_args: Sequence[Arg]) -> None:
        """A script found the group of these spec arguments gone: store it on next use."""
        self._groups_stored.discard(str(spec_args[1]))

    def _check_layout(self: _Backend) -> None:
        """Bring the namespace to :data:`LAYOUT` before this backend's first claim or wait."""
        if not self._layout_checked:
            self._run("layout", [LAYOUT])
            self._layout_checked = True
