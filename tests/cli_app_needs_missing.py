"""An --app module that imports a module that is not installed (for the CLI tests)."""

import jobqueue_no_such_dependency  # noqa: F401
