# The app image. `docker compose up --build` runs it twice: once as the one-shot `migrate`
# service (`alembic upgrade head`), then as the app, next to Postgres and MailHog.
#
# Python 3.11, the version CI runs the suite on: requirements.lock is universal, but it
# picks some versions per Python (see its markers), and on 3.11 the image runs exactly the
# packages the tests ran. Debian pinned too (trixie), so a rebuild does not move the OS.

# --- builder: the runtime lock file, installed into a virtualenv -------------------------
FROM python:3.11-slim-trixie AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Only requirements.lock (never the dev lock): the layer is rebuilt when it changes, and
# not when the source does. --require-hashes: a file whose hash is not in the lock is
# refused. --no-deps: the lock already lists every package, so pip resolves nothing.
# --only-binary: wheels only; the slim image has no compiler, and no build step runs.
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
        -r /tmp/requirements.lock

# --- the image: Python, the virtualenv and the app's own files ---------------------------
FROM python:3.11-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

# Same path as in the builder: the venv's scripts (uvicorn, alembic) name it in their #!.
COPY --from=builder /opt/venv /opt/venv

# The project is not pip-installed: it runs from /app, where `backend/context.py` finds
# `templates/` beside the package and alembic.ini finds `migrations/`. Owned by root and
# read-only for the app user: the app writes nothing to its own tree. .dockerignore keeps
# backend/devstack (the app never imports it), the tests and the dev files out.
COPY alembic.ini ./
COPY migrations ./migrations
COPY templates ./templates
COPY backend ./backend

USER app

EXPOSE 8000

# /healthz answers 200 only when the database does (503 otherwise, which urlopen raises).
# No curl in the slim image, so Python's urllib does the request.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Serving only: migrations are a step of their own, run once per deploy before the app
# starts (compose's `migrate` service; with plain docker,
# `docker run --rm -e DATABASE_URL=... IMAGE alembic upgrade head`). Exec form, so uvicorn
# is PID 1 and gets SIGTERM directly. The flags after the port are SERVING_ARGS in
# backend/devstack/app_process.py, which says why each is there (proxy headers, bounded
# request heads, a cap on connections, no Server header); a test holds the two together.
CMD ["uvicorn", "backend.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers", "--http", "h11", "--h11-max-incomplete-event-size", "16384", "--limit-concurrency", "1000", "--no-server-header"]
