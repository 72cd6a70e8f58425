"""The contract suite as a package: ``BackendContract`` is every part of it, no part's test
hides another's (a shadowed method would silently drop a test from every backend), and a part
runs on its own."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import jobqueue.testing.contract as contract
from jobqueue.backend import Backend, BackendOptions
from jobqueue.backends.memory import MemoryBackend
from jobqueue.testing import BackendContract
from jobqueue.testing.contract import ContractBase, DedupContract


def _parts() -> dict[str, type]:
    """Each module of the package and the contract part (a ContractBase subclass) it defines."""
    parts = {}
    for info in pkgutil.iter_modules(contract.__path__):
        module = importlib.import_module(f"{contract.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, ContractBase)
                and cls is not ContractBase
                and cls.__module__ == module.__name__
            ):
                parts[info.name] = cls
    return parts


def test_backend_contract_is_every_part() -> None:
    parts = _parts()
    assert set(parts) == {
        "storage", "fencing", "ordering", "dedup", "waits", "handoff", "schedules",
        "schedule_records", "control", "operator", "stalls", "outcomes", "machines", "apply",
        "flows",
    }  # fmt: skip
    optional = {parts["handoff"]}  # a backend offering the hand-off adds it itself
    assert set(BackendContract.__bases__) == set(parts.values()) - optional


def test_no_part_hides_a_test_of_another() -> None:
    seen: dict[str, str] = {}
    for module, part in _parts().items():
        for name in vars(part):
            if name.startswith("test_"):
                assert name not in seen, f"{name} is in both {seen[name]} and {module}"
                seen[name] = module
    collected = {name for name in dir(BackendContract) if name.startswith("test_")}
    handoff = {name for name in vars(_parts()["handoff"]) if name.startswith("test_")}
    assert collected == set(seen) - handoff


class TestOnePartAlone(DedupContract):
    """A part subclassed on its own has the fixtures and hooks it needs."""

    def make_backend(self, options: BackendOptions) -> Backend:
        return MemoryBackend(options)
