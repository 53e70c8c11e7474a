"""The dev stack beside the app: what `make dev`, the tests, the bench and the scripts
run it with (embedded Postgres, the mail inbox, the app as a process, an SMTP proxy).
The app never imports it, and the Docker image leaves it out (.dockerignore)."""

from pathlib import Path

# The checkout: the dev stack runs from one, never from an installed copy.
REPO_ROOT = Path(__file__).resolve().parents[2]
