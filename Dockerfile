# The app image: `docker compose up --build` runs it next to Postgres and MailHog.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Runtime dependencies only (never the `dev` extra), in their own layer so that editing
# the source does not reinstall them. They are read from pyproject.toml, the single list
# of dependencies. The project itself is not pip-installed: it runs from /app, where
# `backend/context.py` finds `templates/` beside the package and alembic.ini finds
# `migrations/`; an installed copy in site-packages would lack both.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

# Owned by root and read-only for the app user: the app writes nothing to its own tree.
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

# Migrations first (a failure stops the start), then `exec` so uvicorn becomes PID 1 and
# gets SIGTERM directly. --no-proxy-headers: the app decides whose X-Forwarded-For to
# believe (TRUSTED_PROXIES), from the real peer address, which uvicorn would overwrite.
CMD ["sh", "-c", "alembic upgrade head && exec uvicorn backend.main:app --host 0.0.0.0 --port 8000 --no-proxy-headers"]
