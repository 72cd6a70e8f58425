"""Peers whose producer is a process of another runtime, driven over a pipe: the Node peers
(``node``) and oban-py (Python 3.12, which the harness may not be).

The producer is one long-lived process per adapter (as the Python adapters keep one client),
started with the adapter: it answers one JSON object per line on its stdout, first
``{"ready": true, ...}`` once connected, then one answer per JSON request written to its stdin
(``{"error": "..."}`` on failure, raised here). Requests every producer serves: ``each`` (submit
the payloads one by one, awaiting each, every ``interval`` seconds if given; answers each
submit's wall-clock time taken just before the call), ``bulk`` (the library's bulk API) and
``close``. Its stderr goes to ``bench/results/logs/<name>-producer.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from common import RESULTS

from peers import Adapter


class PipedAdapter(Adapter):
    """Implement ``producer_command`` (and ``producer_cwd``/``producer_env`` if needed) and
    ``worker_command``."""

    def producer_command(self) -> list[str]:
        raise NotImplementedError

    def producer_cwd(self) -> Path | None:
        return None

    def producer_env(self) -> dict[str, str]:
        """Added to the harness's environment for the producer."""
        return {}

    def __init__(self, url: str) -> None:
        super().__init__(url)
        logs = RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = open(logs / f"{self.name}-producer.log", "wb")  # noqa: SIM115 - in close()
        self.process = subprocess.Popen(
            self.producer_command(),
            env={**os.environ, **self.producer_env()},
            cwd=self.producer_cwd(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        self.ready = self._read()  # {"ready": true, ...} once connected

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} producer exited; see {self.log.name}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name} producer: {answer['error']}")
        return dict(answer)

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        stdin.write(json.dumps(request, separators=(",", ":")) + "\n")
        stdin.flush()
        return self._read()

    def submit_each(self, payloads: Sequence[dict[str, Any]], interval: float = 0.0) -> list[float]:
        answer = self._call({"op": "each", "payloads": list(payloads), "interval": interval})
        return [float(stamp) for stamp in answer["stamps"]]

    def submit_bulk(self, payloads: Sequence[dict[str, Any]]) -> None:
        self._call({"op": "bulk", "payloads": list(payloads)})

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self._call({"op": "close"})
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
