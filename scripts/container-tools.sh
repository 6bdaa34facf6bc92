#!/usr/bin/env bash
# The container tools the container-target tests use (podman, buildah, runc, catatonit for
# `--init`, debootstrap for the locally made base image), installed when missing.
# Debian/Ubuntu as root only; elsewhere it says what is missing and the tests skip.
set -euo pipefail
missing=()
for tool in podman buildah runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${missing[*]} missing and not installable here (needs root and apt-get);" \
         "the container tests will be skipped" >&2
    exit 0
fi
echo "installing ${missing[*]} (apt-get)"
# A failed install must not stop the rest of the suite: the container tests then skip, and
# pytest's summary (-ra) names the reason.
if ! { apt-get update -qq \
       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          podman buildah runc catatonit debootstrap uidmap fuse-overlayfs >/dev/null; }; then
    echo "warning: installing the container tools failed; the container tests will be skipped" >&2
fi
