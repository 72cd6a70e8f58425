"""Every ```python sample in README.md and docs/*.md runs, as written, and exits 0.

The rule for samples (see tests/docs_blocks.py for how blocks are found):

* Each ```python block **stands alone**: it is a whole program, run by itself with this
  interpreter in a fresh, empty temporary directory (its cwd), so ``sqlite:///jobs.db`` is a
  file there. Blocks of one page never share state; a sample defines what it uses.
* A block with a ``title="path"`` attribute (```python title="contacts_jobs/plugin.py") is not
  a program but a **file of the page's example project**. Every titled block of the page is
  written at its path in the sample's directory before the sample runs (so samples may import
  them); titled Python files are compiled here and exercised by tests/test_doc_projects.py,
  which installs the project and runs its tests.
* Samples that need Redis get ``JOBQUEUE_URL=redis://127.0.0.1:6379/15`` and a namespace of
  their own in ``JOBQUEUE_NAMESPACE`` (``docs-<uuid>``); its keys are deleted afterwards, by
  SCAN of that namespace only.
* Samples that mention ``JOBQUEUE_POSTGRES_URL`` get it: the test session's own PostgreSQL
  database (tests/backends/postgres_fixtures.py) with a schema of their own, dropped after.
* Other languages (bash, toml, text, console) are not run here.
"""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_blocks import Block, all_blocks, write_files

REDIS_URL = os.environ.get("JOBQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TIMEOUT = 60

SAMPLES = [b for b in all_blocks() if b.lang == "python" and b.title is None]
PY_FILES = [b for b in all_blocks() if b.lang == "python" and b.title is not None]


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    namespace = f"docs-{uuid.uuid4().hex}"
    yield namespace
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"jq:{{{namespace}}}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except Exception:  # no server: the sample could not have written anything either
        pass


def test_there_are_samples() -> None:
    pages = {block.page.name for block in SAMPLES}
    expected = {"README.md", "index.md", "getting-started.md", "coming-from.md", "deploying.md"}
    assert expected <= pages


@pytest.fixture
def postgres_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """``JOBQUEUE_POSTGRES_URL`` for a sample that uses it (only those need a server)."""
    block: Block = request.getfixturevalue("block")
    if "JOBQUEUE_POSTGRES_URL" not in block.code:
        yield {}
        return
    from tests.backends.postgres_fixtures import drop_schema, new_schema

    base = request.getfixturevalue("postgres_url")
    schema = new_schema()
    yield {"JOBQUEUE_POSTGRES_URL": f"{base}?schema={schema}"}
    drop_schema(base, schema)


@pytest.mark.parametrize("block", SAMPLES, ids=lambda b: b.id)
def test_sample_runs(
    block: Block, tmp_path: Path, redis_namespace: str, postgres_env: dict[str, str]
) -> None:
    write_files(block.page, tmp_path)
    program = tmp_path / "sample.py"
    program.write_text(block.code, encoding="utf-8")
    env = {
        **os.environ,
        "JOBQUEUE_URL": REDIS_URL,
        "JOBQUEUE_NAMESPACE": redis_namespace,
        "PYTHONPATH": str(tmp_path),
        **postgres_env,
    }
    result = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, (
        f"{block.id} exited with {result.returncode}\n--- sample\n{block.code}"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


@pytest.mark.parametrize("block", PY_FILES, ids=lambda b: b.id)
def test_file_compiles(block: Block, tmp_path: Path) -> None:
    target = tmp_path / "module.py"
    target.write_text(block.code, encoding="utf-8")
    py_compile.compile(str(target), doraise=True)
