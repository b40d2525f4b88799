# syntax=docker/dockerfile:1.7
# One image for every Integration Hub service; the command picks the service:
#   python -m hub_gateway | hub_ledger | hub_dispatcher | hub_reconciler | mock_operator | mock_rgs, or hub-migrate.

# ---- build: resolve exactly what uv.lock pins, into a relocatable virtualenv ------------------------------
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src

# Third-party dependencies first: this layer survives source-only changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=libs,target=libs \
    --mount=type=bind,source=services,target=services \
    uv sync --locked --no-dev --all-packages --no-install-workspace

COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
# --no-editable: the workspace packages are installed into the venv, so /src is not needed at runtime.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --all-packages --no-editable

# ---- runtime ----------------------------------------------------------------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --home-dir /app --shell /usr/sbin/nologin hub \
 && mkdir -p /app/reconciliation-reports /app/.cache \
 && chown -R hub:hub /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
# Services bind 127.0.0.1 by default; every deployment sets <PREFIX>_HOST=0.0.0.0 (see docker-compose.yml).
EXPOSE 3000 3001 3002 3010 3011 3012
# Exec form: python is PID 1 and gets SIGTERM directly (graceful shutdown through aiohttp's cleanup_ctx).
CMD ["python", "-m", "hub_gateway"]
