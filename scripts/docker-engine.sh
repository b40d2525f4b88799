#!/usr/bin/env bash
# The Docker engine `make images` and `make test-docker` need, on a machine that may have none (CI):
#   scripts/docker-engine.sh start   install docker.io, docker-compose and debootstrap from Debian's packages when
#                                    missing (root); start dockerd when no engine answers at DOCKER_HOST (default
#                                    the local socket), and wait until it answers
#   scripts/docker-engine.sh stop    stop the dockerd that `start` started, and nothing else
# HUB_DOCKERD_DATA_ROOT / HUB_DOCKERD_EXEC_ROOT place the started engine's state (dockerd's defaults otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

state=.cache/docker-engine
started_pid=$state/dockerd.pid
host=${DOCKER_HOST:-unix:///var/run/docker.sock}

say() { echo "docker-engine: $*" >&2; }
fail() { say "$*"; exit 1; }
answers() { command -v docker >/dev/null && DOCKER_HOST=$host docker version >/dev/null 2>&1; }
have_compose() { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }

start() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  have_compose || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      fail "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"
    fi
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if answers; then
    say "an engine answers at $host; using it"
    return
  fi
  [ "$(id -u)" = 0 ] || fail "no engine answers at $host and starting dockerd needs root"
  case $host in unix://*) ;; *) fail "no engine answers at $host; only a local unix socket can be started here" ;; esac
  mkdir -p "$state"
  local args=(-H "$host" --pidfile "$state/dockerd.daemon.pid")
  if [ -n "${HUB_DOCKERD_DATA_ROOT:-}" ]; then args+=(--data-root "$HUB_DOCKERD_DATA_ROOT"); fi
  if [ -n "${HUB_DOCKERD_EXEC_ROOT:-}" ]; then args+=(--exec-root "$HUB_DOCKERD_EXEC_ROOT"); fi
  # Its own session: the engine outlives this script (and a Ctrl-C in the terminal) until `stop`.
  setsid dockerd "${args[@]}" >"$state/dockerd.log" 2>&1 </dev/null &
  echo $! >"$started_pid"
  local waited=0
  until answers; do
    kill -0 "$(cat "$started_pid")" 2>/dev/null || { tail -n 20 "$state/dockerd.log" >&2; rm -f "$started_pid"; fail "dockerd exited"; }
    [ $waited -lt 60 ] || { tail -n 20 "$state/dockerd.log" >&2; fail "dockerd did not answer at $host within 60 s"; }
    sleep 1
    waited=$((waited + 1))
  done
  say "started dockerd (pid $(cat "$started_pid"), $host); \`scripts/docker-engine.sh stop\` stops it"
}

stop() {
  [ -f "$started_pid" ] || return 0
  local pid waited=0
  pid=$(cat "$started_pid")
  if kill -TERM "$pid" 2>/dev/null; then
    # dockerd stops its containers and its containerd before it exits.
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 60 ]; do sleep 1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      say "dockerd (pid $pid) did not stop within 60 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$started_pid"
  say "stopped dockerd (pid $pid)"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
