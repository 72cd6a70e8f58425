"""An --app module whose import fails (for the CLI tests)."""

from jobqueue import JobQueue

queue = JobQueue("memory://", load_entrypoints=False)
RATIO = 1 / 0
