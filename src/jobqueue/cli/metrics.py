"""``jobqueue metrics``: a Prometheus exporter for a queue, without the web UI."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from wsgiref.simple_server import WSGIServer

from jobqueue.errors import ConfigurationError
from jobqueue.queue import JobQueue

AddCommand = Callable[[str, str], argparse.ArgumentParser]


def add_metrics_command(command: AddCommand) -> None:
    metrics = command("metrics", "serve Prometheus metrics of the queue until SIGTERM/SIGINT")
    metrics.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    metrics.add_argument("--port", type=int, default=9100, help="port to listen on (9100)")
    metrics.set_defaults(command=cmd_metrics)


def cmd_metrics(args: argparse.Namespace, queue: JobQueue) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # only a flag: the main thread does the rest

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = start_metrics(queue, args.host, args.port)
        while not stop.wait(1.0):
            pass
        server.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def start_metrics(queue: JobQueue, host: str, port: int) -> WSGIServer:
    """Start the exporter; one clear error when the extra is missing or the port is taken."""
    try:
        from jobqueue.metrics import start_metrics_server
    except ImportError:
        raise ConfigurationError(
            "metrics need prometheus-client: pip install 'jobqueue[metrics]'"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"--port must be from 0 to 65535, got {port}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigurationError(f"--host must be an IP address, got {host!r}") from None
    try:
        server, _ = start_metrics_server(queue, port, addr=host)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    # On stderr: a supervisor (or a test) learns the port from it, --json output stays clean.
    print(f"serving metrics on http://{host}:{server.server_port}/metrics", file=sys.stderr)
    return server
