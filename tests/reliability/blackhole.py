"""A loopback TCP proxy that can be switched into a black hole: a network partition.

``Blackhole(upstream_host, upstream_port)`` listens on a free 127.0.0.1 port and forwards
every connection to the upstream. ``cut()`` stops forwarding in both directions but keeps
every connection open and accepts new ones -- bytes wait in the kernel's buffers, as on a
link that silently drops packets, no reset and no error -- and ``heal()`` lets them flow
again. ``close()`` stops the proxy and closes every socket it holds.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

POLL = 0.05
"""Seconds a pump waits on its socket or on the link before looking again (stop is seen)."""


class Blackhole:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._start(self._accept, "accept")

    def cut(self) -> None:
        """Stop forwarding (the connections stay open)."""
        self._flowing.clear()

    def heal(self) -> None:
        """Forward again, what waited first."""
        self._flowing.set()

    def close(self) -> None:
        self._stopped.set()
        self._flowing.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                with contextlib.suppress(OSError):
                    sock.close()

    def _start(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(
            target=target,  # type: ignore[arg-type]
            args=args,
            name=f"blackhole-{name}",
            daemon=True,
        )
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=5)
            with self._lock:
                self._sockets += [client, upstream]
            self._start(self._pump, "up", client, upstream)
            self._start(self._pump, "down", upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._stopped.is_set():
            if not self._flowing.wait(POLL):
                continue  # cut: read nothing, so nothing is sent either way
            try:
                readable, _, _ = select.select([source], [], [], POLL)
                if not readable or not self._flowing.is_set():
                    continue
                data = source.recv(65536)
                if not data:  # one side closed: close the other
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
            except OSError:
                return
