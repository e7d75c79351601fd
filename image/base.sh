#!/usr/bin/env bash
# Build a local Python base image from Debian packages, for machines that reach no container registry:
# debootstrap (bookworm, minbase) + python3 + python3-venv + ca-certificates, imported as $BASE_IMAGE.
# Debian bookworm's python3 is 3.11, what the official python:3.11-slim-bookworm image carries, so the
# Dockerfile builds the same way on either base. Skipped when $BASE_IMAGE exists already.
#   usage: image/base.sh "podman --root …" localhost/turnout-base:bookworm WORKDIR
set -euo pipefail
podman_cmd=$1 base_image=$2 work=$3
if $podman_cmd image exists "$base_image"; then
  echo "base image $base_image exists"
  exit 0
fi
if [[ $base_image != localhost/* ]]; then  # a registry image: pull it
  $podman_cmd pull "$base_image"
  exit 0
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs="$work/rootfs"
rm -rf "$rootfs"
mkdir -p "$work"
echo "debootstrap bookworm into $rootfs (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >"$work/debootstrap.log"
# The building machine's own CAs (e.g. a TLS-inspecting proxy's), so pip inside the build reaches PyPI through it.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | $podman_cmd import --change 'CMD ["python3"]' - "$base_image" >/dev/null
rm -rf "$rootfs"
echo "base image $base_image built"
