#!/usr/bin/env bash
# `make images`: every image the Hub runs from, built without a registry when none is reachable.
#   bases               the official debian:bookworm-slim / python:3.11-slim (pinned by digest in the Dockerfiles)
#                       when present or pullable; otherwise Debian bases made here: debootstrap (minbase) +
#                       `docker import` (infra/base/debootstrap.sh), then infra/base/Dockerfile for Python
#   HUB_IMAGE           the Hub, every service (Dockerfile)            default integration-hub:local
#   HUB_KAFKA_IMAGE     Kafka 4.1.1 from the local broker's jars       default integration-hub/kafka:4.1.1
#   HUB_POSTGRES_IMAGE  PostgreSQL 15 from Debian packages             default integration-hub/postgres:15
# Then prints each image's size. Needs a Docker engine (DOCKER_HOST) and a client that builds with BuildKit
# (the buildx plugin, or Debian's docker.io client); DOCKER names the client to use.
# HUB_REBUILD_BASES=1 rebuilds the Debian bases (they are reused otherwise; rebuild for Debian security updates).
# HUB_BUILD_CA_BUNDLE: the trust store the Hub build uses to reach PyPI (default: the system's), for networks
# that intercept TLS; it is given to the build as a secret and stays out of the image.
set -euo pipefail
cd "$(dirname "$0")/.."

HUB_IMAGE=${HUB_IMAGE:-integration-hub:local}
HUB_KAFKA_IMAGE=${HUB_KAFKA_IMAGE:-integration-hub/kafka:4.1.1}
HUB_POSTGRES_IMAGE=${HUB_POSTGRES_IMAGE:-integration-hub/postgres:15}
LOCAL_DEBIAN=integration-hub/base-debian:bookworm
LOCAL_PYTHON=integration-hub/base-python:3.11-bookworm
LOCAL_PYTHON_BUILD=integration-hub/base-python-build:3.11-bookworm
STAGE=.cache/images
UV_CMD=${UV:-uv}

say() { echo "images: $*" >&2; }
fail() { say "$*"; exit 1; }
dockerfile_default() { sed -n "s/^ARG $2=//p" "$1" | head -n 1; }
OFFICIAL_DEBIAN=$(dockerfile_default infra/base/Dockerfile DEBIAN_BASE)
OFFICIAL_PYTHON=$(dockerfile_default Dockerfile PYTHON_BASE)

# A client that builds with BuildKit (RUN --mount, secrets) using the engine's built-in frontend.
pick_client() {
  local candidates candidate major
  if [ -n "${DOCKER:-}" ]; then candidates=$DOCKER; else candidates=$(which -a docker 2>/dev/null | awk '!seen[$0]++'); fi
  for candidate in $candidates; do
    if "$candidate" buildx version >/dev/null 2>&1; then
      docker_cli=$candidate; build_cmd=("$candidate" buildx build --load); return
    fi
  done
  for candidate in $candidates; do
    major=$("$candidate" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    # Clients before 23.0 carry their own BuildKit client; later ones need the buildx plugin.
    if [ -n "$major" ] && [ "$major" -lt 23 ]; then
      docker_cli=$candidate; build_cmd=(env DOCKER_BUILDKIT=1 "$candidate" build); return
    fi
  done
  fail "no docker client that builds with BuildKit: install the buildx plugin or Debian's docker.io (apt-get install docker.io)"
}

present() { "$docker_cli" image inspect "$1" >/dev/null 2>&1; }
available() { present "$1" || "$docker_cli" pull -q "$1" >/dev/null 2>&1; }

# build <log name> <docker build arguments...>: quiet unless it fails, then the end of its log.
build() {
  local name=$1 log="$STAGE/$1.log" started=$SECONDS
  shift
  mkdir -p "$STAGE"
  if ! "${build_cmd[@]}" --progress=plain "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "building $name failed (full log: $log)"
  fi
  say "built $name in $((SECONDS - started)) s"
}

pick_client
"$docker_cli" info >/dev/null 2>&1 || fail "no Docker engine answers at ${DOCKER_HOST:-the default socket}"
total_started=$SECONDS

if available "$OFFICIAL_DEBIAN"; then
  debian_base=$OFFICIAL_DEBIAN
else
  debian_base=$LOCAL_DEBIAN
  if [ "${HUB_REBUILD_BASES:-0}" = 1 ] || ! present "$LOCAL_DEBIAN"; then
    say "$OFFICIAL_DEBIAN cannot be pulled: making $LOCAL_DEBIAN with debootstrap (about a minute)"
    started=$SECONDS
    DOCKER=$docker_cli infra/base/debootstrap.sh "$LOCAL_DEBIAN" >/dev/null
    say "built $LOCAL_DEBIAN in $((SECONDS - started)) s"
  fi
fi

if available "$OFFICIAL_PYTHON"; then
  python_base=$OFFICIAL_PYTHON
  python_build_base=$OFFICIAL_PYTHON
else
  say "$OFFICIAL_PYTHON cannot be pulled: Python bases from Debian packages on $debian_base"
  build base-python --build-arg "DEBIAN_BASE=$debian_base" --target python -t "$LOCAL_PYTHON" infra/base
  build base-python-build --build-arg "DEBIAN_BASE=$debian_base" --target python-build -t "$LOCAL_PYTHON_BUILD" infra/base
  python_base=$LOCAL_PYTHON
  python_build_base=$LOCAL_PYTHON_BUILD
fi

ca_bundle=${HUB_BUILD_CA_BUNDLE:-}
if [ -z "$ca_bundle" ]; then
  for candidate in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -s "$candidate" ]; then ca_bundle=$candidate; break; fi
  done
fi
secret=()
if [ -n "$ca_bundle" ]; then secret=(--secret "id=ca_bundle,src=$ca_bundle"); fi
build hub "${secret[@]}" --build-arg "PYTHON_BASE=$python_base" --build-arg "PYTHON_BUILD_BASE=$python_build_base" \
  -t "$HUB_IMAGE" .

# The Kafka image's context: the jars the local broker runs (fetched by Maven into the shared cache) and its scripts.
jars=$($UV_CMD run --locked python -m hub_devstack.kafka_jars) || fail "could not fetch the Kafka broker jars"
rm -rf "$STAGE/kafka"
mkdir -p "$STAGE/kafka"
cp -R "$jars" "$STAGE/kafka/libs"
cp -p infra/kafka/log4j2.properties infra/kafka/run infra/kafka/healthcheck "$STAGE/kafka/"
build kafka -f infra/kafka/Dockerfile --build-arg "DEBIAN_BASE=$debian_base" -t "$HUB_KAFKA_IMAGE" "$STAGE/kafka"

build postgres --build-arg "DEBIAN_BASE=$debian_base" -t "$HUB_POSTGRES_IMAGE" infra/postgres

say "done in $((SECONDS - total_started)) s"
printf '%-48s %-12s %7s\n' IMAGE ID SIZE
for image in "$HUB_IMAGE" "$HUB_KAFKA_IMAGE" "$HUB_POSTGRES_IMAGE" "$debian_base" "$python_base" "$python_build_base"; do
  read -r id bytes < <("$docker_cli" image inspect -f '{{.Id}} {{.Size}}' "$image")
  id=${id#sha256:}
  printf '%-48s %-12s %4d MB\n' "${image%%@*}" "${id:0:12}" $((bytes / 1000000))
done | awk '!seen[$1]++'
