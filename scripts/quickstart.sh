#!/bin/sh
# jobqueue quickstart: needs only Python 3.10+ (no Redis, no server).
#
# Creates a virtualenv (.venv, or $VENV), installs jobqueue and the example app from
# examples/contacts_app, and runs that example end to end on a temporary SQLite file: it submits
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
echo "quickstart: installing jobqueue and the example app (pip install -e . -e examples/contacts_app)"
# Python 3.10.0's own pip predates editable installs of pyproject-only packages: upgrade it.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e "$ROOT" -e "$ROOT/examples/contacts_app"

HOME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/jobqueue-quickstart.XXXXXX")
echo "quickstart: running the example in $HOME_DIR"
echo
"$VENV/bin/python" -m jobqueue_example_contacts --home "$HOME_DIR"
