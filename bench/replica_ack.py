"""What replica acknowledgement (``?replicas=1``) costs per submit, and what the clock floor
of job ids costs: a primary and a replica of its own (redis-server on free loopback ports,
``--save "" --appendonly no``), stopped at the end; it never touches another Redis.

    .venv/bin/python bench/replica_ack.py                 # 3,000 submits per case, 3 rounds
    .venv/bin/python bench/replica_ack.py --jobs 500 --rounds 1

Prints, per case, the median time of one ``submit_job`` (one at a time, as a web request
does) and of one job of a bulk ``submit_jobs`` (500 per call), median [min-max] over the
rounds, and the server's time per submit call (``INFO commandstats``).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from jobqueue import JobQueue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(workdir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not on the PATH")
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", str(workdir), "--repl-diskless-sync-delay", "0", *extra]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return process


def one_by_one(queue: JobQueue, count: int) -> float:
    """Microseconds per submit_job."""
    started = time.perf_counter()
    for n in range(count):
        queue.submit_job("bench", {"n": n})
    return (time.perf_counter() - started) / count * 1e6


def bulk(queue: JobQueue, count: int) -> float:
    """Microseconds per job of submit_jobs (batches of 500 per call)."""
    started = time.perf_counter()
    queue.submit_jobs("bench", [{"n": n} for n in range(count)])
    return (time.perf_counter() - started) / count * 1e6


def server_usec_per_call(client: redis.Redis) -> float:
    stats = client.info("commandstats").get("cmdstat_fcall", {})
    return float(stats.get("usec_per_call", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        primary_port, replica_port = free_port(), free_port()
        primary = start(Path(tmp) / "primary", primary_port)
        replica = start(
            Path(tmp) / "replica", replica_port, "--replicaof", "127.0.0.1", str(primary_port)
        )
        try:
            probe = redis.Redis(port=replica_port)
            while probe.info("replication").get("master_link_status") != "up":
                time.sleep(0.05)
            base = f"redis://127.0.0.1:{primary_port}/0?namespace=bench"
            cases = {"replicas=0": base, "replicas=1": base + "&replicas=1&replica_timeout=5"}
            results: dict[str, dict[str, list[float]]] = {c: {} for c in cases}
            admin = redis.Redis(port=primary_port)
            for _ in range(args.rounds):
                for case, url in cases.items():  # interleaved: both see the same machine
                    queue = JobQueue(url, load_entrypoints=False)
                    queue.add_worker("bench", lambda job: None)
                    queue.submit_job("bench", None)  # warm up: the library, the connection
                    admin.config_resetstat()
                    single = one_by_one(queue, args.jobs)
                    server = server_usec_per_call(admin)
                    many = bulk(queue, args.jobs)
                    queue.close()
                    for name, value in (("one", single), ("bulk", many), ("server", server)):
                        results[case].setdefault(name, []).append(value)
                    admin.flushall()
            for case, figures in results.items():
                shown = ", ".join(
                    f"{name} {statistics.median(v):.1f} us [{min(v):.1f}-{max(v):.1f}]"
                    for name, v in figures.items()
                )
                print(f"{case}: {shown}")
            one = {c: statistics.median(results[c]["one"]) for c in cases}
            print(
                f"WAIT costs {one['replicas=1'] - one['replicas=0']:.1f} us per submit_job "
                f"({one['replicas=1'] / one['replicas=0']:.2f}x)"
            )
        finally:
            for process in (replica, primary):
                process.terminate()
                process.wait(timeout=10)


if __name__ == "__main__":
    main()
