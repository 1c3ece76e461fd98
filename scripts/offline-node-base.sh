#!/bin/sh
# Builds stand-ins for the Dockerfile's base images where Docker Hub cannot be reached but Debian's
# mirror can: a minimal Debian bookworm from debootstrap (tagged qgate-offline/debian:bookworm),
# and on it this machine's Node.js and npm in /usr/local as in the official image, with user `node`
# (uid 1000), tagged as node:<version>-bookworm-slim. They are for checking the Dockerfile on such a
# machine, not for shipping: the official images are what `docker build` should use wherever they
# can be pulled. Without buildx the classic builder builds every stage, the unused CUDA one too, so
# the bare Debian stands in for the CUDA image there:
#
#   sudo scripts/offline-node-base.sh [tag]     # default tag: node:20.19-bookworm-slim
#   DOCKER_BUILDKIT=0 docker build --network host --build-arg CUDA_IMAGE=qgate-offline/debian:bookworm -t qgate .
#
# Needs root, debootstrap and a running Docker daemon. The host's CA bundle is copied in, so that
# npm inside the build trusts what npm on the host trusts.
set -eu
tag="${1:-node:20.19-bookworm-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - qgate-offline/debian:bookworm >/dev/null
node_bin="$(command -v node)"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
install -D "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' > "$root/usr/local/etc/npmrc"
chroot "$root" /bin/sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/sh --create-home node'
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["node"]' - "$tag"
echo "built qgate-offline/debian:bookworm, and $tag with Node $("$node_bin" --version)"
