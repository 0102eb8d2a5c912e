#!/usr/bin/env bash
# Builds the xenha-bridge image with buildah, without a Docker engine and
# without pulling anything (FROM scratch), into an OCI archive.
#
#   deploy/build-image.sh [OUT]       OUT defaults to bin/xenha-bridge-image.tar
#
# Environment:
#   VERSION       the version the binary reports (default: git describe, else dev)
#   IMAGE_NAME    the image's name inside the archive (default localhost/xenha-bridge:VERSION)
#   BUILDAH_ROOT  buildah's storage (--root); default a temporary directory,
#                 removed afterwards, so the machine's storage is left alone
#   BUILDAH_RUNROOT  buildah's run root (--runroot); default beside BUILDAH_ROOT
#   GO            the go command (default go)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bin/xenha-bridge-image.tar}
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
IMAGE_NAME=${IMAGE_NAME:-localhost/xenha-bridge:${VERSION}}

if ! command -v buildah >/dev/null; then
  echo "build-image: buildah is not installed: apt-get install buildah" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
BUILDAH_ROOT=${BUILDAH_ROOT:-$work/storage}
BUILDAH_RUNROOT=${BUILDAH_RUNROOT:-$BUILDAH_ROOT.run}

ctx=$work/context
root=$work/rootfs
mkdir -p "$ctx" "$root/etc/ssl/certs" "$root/tmp" "$root/var/lib/xenha-bridge"

# The static binary.
CGO_ENABLED=0 GOOS=linux "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
  -o "$ctx/xenha-bridge" ./cmd/xenha-bridge

# The files around it, as a tar so that owners and modes are exact: the
# user (uid 65532, as distroless's "nonroot"), the CA certificates, /tmp
# (1777) and the journal's directory (0700, the user's).
printf 'root:x:0:0:root:/root:/sbin/nologin\nxenha-bridge:x:65532:65532:xenha-bridge:/var/lib/xenha-bridge:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nxenha-bridge:x:65532:\n' >"$root/etc/group"
ca=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$ca" ]; then
  echo "build-image: $ca is missing: apt-get install ca-certificates" >&2
  exit 1
fi
cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "$root/etc" "$root/etc/ssl" "$root/etc/ssl/certs" "$root/var" "$root/var/lib"
chmod 1777 "$root/tmp"
chmod 0700 "$root/var/lib/xenha-bridge"
tarc=(tar --numeric-owner --sort=name --mtime=@0 -C "$root")
"${tarc[@]}" --owner=0 --group=0 -cf "$ctx/rootfs.tar" etc tmp
"${tarc[@]}" --owner=0 --group=0 --no-recursion -rf "$ctx/rootfs.tar" var var/lib
"${tarc[@]}" --owner=65532 --group=65532 -rf "$ctx/rootfs.tar" var/lib/xenha-bridge
cp deploy/Containerfile "$ctx/Containerfile"

b=(buildah --storage-driver vfs --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT")
"${b[@]}" bud --isolation chroot --pull=false --layers=false --build-arg "VERSION=$VERSION" \
  -f "$ctx/Containerfile" -t "$IMAGE_NAME" "$ctx" >&2
mkdir -p "$(dirname "$out")"
rm -f "$out"
"${b[@]}" push "$IMAGE_NAME" "oci-archive:$out:$IMAGE_NAME" >&2
"${b[@]}" rmi "$IMAGE_NAME" >/dev/null 2>&1 || true
echo "$out ($IMAGE_NAME, $(du -h "$out" | cut -f1))"
