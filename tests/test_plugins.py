"""Plugins found through a real entry point of an installed distribution (tests/plugin_dist)."""

from __future__ import annotations

from importlib import metadata

import pytest

from jobqueue import JobQueue, JobState
from jobqueue.hooks import ENTRY_POINT_GROUP


@pytest.fixture(scope="module")
def plugin_module():  # type: ignore[no-untyped-def]
    names = [ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    assert "test-plugin" in names, (
        "the test plugin distribution is not installed: pip install -e tests/plugin_dist "
        "(scripts/test does this)"
    )
    import jobqueue_test_plugin

    return jobqueue_test_plugin


def test_plugin_workers_backends_and_hooks_load_from_entry_point(plugin_module) -> None:  # type: ignore[no-untyped-def]
    plugin_module.EVENTS.clear()
    queue = JobQueue("plugin-mem://anything")
    assert "plugin-reindex" in queue.workers
    assert queue.workers["plugin-reindex"].attempts == 2
    job = queue.submit_job("plugin-reindex", {"index": "contacts"})
    assert job.title == "Reindex contacts"
    assert queue.work() == 1
    done = queue.get_job_by_id(job.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.result == {"reindexed": "contacts"}
    assert plugin_module.EVENTS == [
        ("submitted", "plugin-reindex"),
        ("completed", "plugin-reindex"),
    ]


def test_entry_points_can_be_turned_off(plugin_module) -> None:  # type: ignore[no-untyped-def]
    queue = JobQueue("memory://", load_entrypoints=False)
    assert "plugin-reindex" not in queue.workers


def test_builtin_backends_register_through_the_same_hook() -> None:
    queue = JobQueue("memory://", load_entrypoints=False)
    schemes: set[str] = set()
    for mapping in queue.plugins.hook.jobqueue_register_backends():
        schemes.update(mapping)
    assert {"memory", "redis", "rediss", "sqlite"} <= schemes
