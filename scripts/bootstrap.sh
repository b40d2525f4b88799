#!/usr/bin/env bash
# Installs what `make up` / `make test` need on a fresh machine: uv (via pip), and - only when missing and we are
# root on Debian - Node.js (a tested example), a JDK, Maven and openssl (the Kafka broker from Maven Central jars,
# and the secured one of the security tests) and PostgreSQL server binaries.
# With KAFKA_BOOTSTRAP_SERVERS/DATABASE_URL set, or HUB_INFRA=docker|env, PostgreSQL's binaries are not needed.
# (HUB_INFRA=auto may still fall back to local processes when Docker lacks the images, so they are installed.)
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
pg_bin() { have initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

if ! have uv && ! python3 -m uv --version >/dev/null 2>&1; then
  echo "bootstrap: installing uv with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv
fi

# Node.js runs the integration guide's example in the tests (docs/examples/first-bet.mjs); 18+ has fetch.
if ! have node; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "bootstrap: installing nodejs with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null
  else
    echo "bootstrap: node is missing: install Node.js 18+ (the tests run docs/examples/first-bet.mjs)" >&2
  fi
fi

# The security tests (and `make up --secure`) run a secured broker from the Maven jars whatever provides the main
# one, with TLS material made by openssl: a JDK, Maven and openssl are needed in every mode.
secured=()
have java || secured+=(openjdk-17-jre-headless)
have mvn || secured+=(maven)
have openssl || secured+=(openssl)
if [ ${#secured[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "bootstrap: installing ${secured[*]} with apt-get (the secured Kafka broker)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${secured[@]}" >/dev/null
  else
    echo "bootstrap: missing ${secured[*]}: the security tests need them (a secured Kafka broker from its jars)" >&2
  fi
fi

case ${HUB_INFRA:-auto} in docker | env) exit 0 ;; esac

missing=()
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  have java || missing+=(openjdk-17-jre-headless)
  have mvn || missing+=(maven)
fi
if [ -z "${DATABASE_URL:-}" ]; then
  pg_bin || missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "bootstrap: installing ${missing[*]} with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing ${missing[*]}: install them, or set KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL, or use Docker (make images, HUB_INFRA=docker)" >&2
    exit 2
  fi
fi
