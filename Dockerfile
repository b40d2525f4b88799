# One image for every Integration Hub service; the command picks the service:
#   python -m hub_gateway | hub_ledger | hub_dispatcher | hub_reconciler | mock_operator | mock_rgs, or hub-migrate.
# `make images` builds it (and the bases, where the official ones cannot be pulled). No `# syntax=` line: the
# engine's built-in BuildKit frontend is used, so building needs no registry.
#
# PYTHON_BASE: the runtime base. Default: the official image pinned by digest (python 3.11, slim).
#   Without a registry, `make images` passes the Debian-packaged base of infra/base by tag (built locally by
#   debootstrap, so it has no registry digest: the tag plus the image id `make images` prints identify it).
# PYTHON_BUILD_BASE: the build stage's base; must have the same Python at the same path (the virtualenv links it).
ARG PYTHON_BASE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
ARG PYTHON_BUILD_BASE=${PYTHON_BASE}

# ---- build: exactly what uv.lock pins, into a relocatable virtualenv ----------------------------------------
FROM ${PYTHON_BUILD_BASE} AS build
# uv comes from PyPI with pip (no second image to pull). The optional `ca_bundle` secret is the build host's
# trust store, for networks that intercept TLS; it is mounted for one step and never stored in a layer.
ARG UV_VERSION=0.13.9
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# The service packages only: hub-devstack (testcontainers, the Docker SDK) and the dev group stay out.
# tests/unit/containers checks this list against the workspace members.
ARG HUB_PACKAGES="hub-common hub-gateway hub-ledger hub-dispatcher hub-reconciler mock-operator mock-rgs hubctl hub-client"

# Third-party dependencies first: this layer survives source-only changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca_bundle \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=libs,target=libs \
    --mount=type=bind,source=services,target=services \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi \
 && set -- && for name in ${HUB_PACKAGES}; do set -- "$@" --package "$name"; done \
 && /opt/uv/bin/uv sync --locked --no-dev --no-install-workspace "$@"

COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
# --no-editable: the workspace packages are installed into the venv, so /src is not needed at runtime.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi \
 && set -- && for name in ${HUB_PACKAGES}; do set -- "$@" --package "$name"; done \
 && /opt/uv/bin/uv sync --locked --no-dev --no-editable "$@"

# ---- runtime ------------------------------------------------------------------------------------------------
FROM ${PYTHON_BASE}
# A fixed uid/gid (not root), matching runAsUser in deploy/k8s. No shell login, no home beyond /app.
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
# Healthy = the service in this container answers GET /ready on its own port (found from its command and its
# <PREFIX>_PORT variable); a one-shot command such as hub-migrate has nothing to probe and counts as healthy.
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "hub_common.healthcheck"]
# Exec form: python is PID 1 and gets SIGTERM directly (graceful shutdown through aiohttp's cleanup_ctx).
CMD ["python", "-m", "hub_gateway"]
