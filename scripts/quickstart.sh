#!/bin/sh
# jobqueue quickstart: needs only Python 3.10+ (no Redis, no server).
#
# Creates a virtualenv (.venv, or $VENV) with jobqueue, installs the example app from
# examples/contacts_app beside it (not into it), and runs that example end to end on a
# temporary SQLite file: it submits
# contact-import and event-alarm jobs, runs a dispatcher until they are done, prints each job's
# id, title, state and result, and exits 0.
set -eu

ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$ROOT/.venv}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "quickstart: needs Python 3.10 or newer; set PYTHON=/path/to/python3.x" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "quickstart: creating a virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "quickstart: installing jobqueue into $VENV (pip install -e .)"
# Python 3.10.0's own pip predates editable installs of pyproject-only packages: upgrade it.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT"

# The example app is a plugin: installed into $VENV it would register its workers in every
# queue your own code creates there. It goes into a folder of its own instead, put on
# PYTHONPATH for this run only.
HOME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/jobqueue-quickstart.XXXXXX")
echo "quickstart: installing the example app into $HOME_DIR/site (not into $VENV)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$HOME_DIR/site" "$ROOT/examples/contacts_app"
echo "quickstart: running the example in $HOME_DIR"
echo
PYTHONPATH="$HOME_DIR/site${PYTHONPATH:+:$PYTHONPATH}" \
    "$VENV/bin/python" -m jobqueue_example_contacts --home "$HOME_DIR"
echo
echo "quickstart: done. $VENV has jobqueue alone, ready for your own code:"
echo "  $VENV/bin/python -c 'import jobqueue; print(jobqueue.__version__)'"
