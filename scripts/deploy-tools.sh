#!/usr/bin/env bash
# Installs the deployment checkers `make check-deploy` needs that are not Python packages, into
# .cache/deploy-tools/bin (printed on stdout for DEPLOY_TOOLS_BIN):
#   kube-score  go install (Go module proxy), pinned version
#   promtool    from Debian's `prometheus` package (apt-get download + dpkg-deb -x: no service is installed)
#   kustomize   go install, only when kubectl (which embeds it) is missing
# kubernetes-validate, hadolint and check-jsonschema come with the locked dev dependency group (uv sync).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.cache/deploy-tools/bin"
mkdir -p "$BIN"
KUBE_SCORE_VERSION=v1.20.0
KUSTOMIZE_VERSION=v5.8.1

have() { command -v "$1" >/dev/null 2>&1; }
need_go() {
  if ! have go; then
    echo "deploy-tools: Go is needed to install $1 (go install); install Go or put $1 on PATH" >&2
    exit 2
  fi
}

if [ ! -x "$BIN/kube-score" ]; then
  need_go kube-score
  echo "deploy-tools: installing kube-score $KUBE_SCORE_VERSION" >&2
  GOBIN="$BIN" go install "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" >&2
fi

if [ ! -x "$BIN/promtool" ]; then
  if have promtool; then
    ln -sf "$(command -v promtool)" "$BIN/promtool"
  else
    echo "deploy-tools: extracting promtool from Debian's prometheus package" >&2
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
      if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2; fi
      (cd "$work" && apt-get download prometheus >&2)
    fi
    dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
    install -m 0755 "$work/x/usr/bin/promtool" "$BIN/promtool"
  fi
fi

if ! have kubectl && [ ! -x "$BIN/kustomize" ]; then
  need_go kustomize
  echo "deploy-tools: installing kustomize $KUSTOMIZE_VERSION (kubectl is missing)" >&2
  GOBIN="$BIN" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
fi

echo "$BIN"
