#!/usr/bin/env bash
# Makes a minimal Debian bookworm base image without a registry: debootstrap (minbase) into a temporary
# directory, trimmed like the official `-slim` images, then `docker import`.
#   infra/base/debootstrap.sh <tag>
# Environment: DOCKER (client command), HUB_DEBIAN_MIRROR (default http://deb.debian.org/debian), HUB_DEBIAN_SUITE.
# Needs root (debootstrap chroots). Takes about a minute; the result is reused until the tag is removed.
set -euo pipefail

tag=${1:?usage: debootstrap.sh <image tag>}
docker_cmd=${DOCKER:-docker}
mirror=${HUB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${HUB_DEBIAN_SUITE:-bookworm}

if [ "$(id -u)" != 0 ]; then
  echo "debootstrap.sh: building the Debian base needs root (debootstrap chroots); or make $tag available" >&2
  exit 2
fi
command -v debootstrap >/dev/null || { echo "debootstrap.sh: debootstrap missing (apt-get install debootstrap)" >&2; exit 2; }

root=$(mktemp -d /tmp/hub-debootstrap.XXXXXX)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1
}
rm -f "$root.log"

# Later `apt-get install`s in Dockerfiles get security updates too. Plain HTTP: apt verifies signatures itself,
# and build containers then need no CA bundle for apt.
security=${mirror%/debian}/debian-security
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
# What the official slim images configure: no recommends, no caches, no docs/man/locales in later installs.
cat >"$root/etc/apt/apt.conf.d/90hub-image" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/90hub-image" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history

# The tag names the suite; the image id `docker import` prints identifies this exact build (see README).
tar -C "$root" --numeric-owner -c . \
  | "$docker_cmd" import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $suite $mirror" - "$tag"
