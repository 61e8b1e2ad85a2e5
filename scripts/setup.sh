#!/usr/bin/env bash
# Idempotent set-up on Debian 12: system packages (only those missing), the virtualenv at .venv,
# the Python packages, and the SM2 software token (hsm/softtoken). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc make cmake libc6-dev libssl-dev openssl libp11-kit-dev p11-kit-modules softhsm2 opensc
              python3 python3-venv python3-dev openjdk-17-jdk-headless
              libbcprov-java libbcpkix-java libbcutil-java
              chromium chromium-driver fonts-noto-cjk
              faketime    # tests/e2e/test_crl_across_nodes.py: a node whose clock runs behind
              valgrind    # make -C hsm/softtoken ctgrind: constant-time check of the SM2 code
              wrk         # bench/ocsp_http.py: the load generator
              gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)   # make -C hsm/softtoken selftest-aarch64

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.racentre-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  echo "setup: installing Python packages"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # compat mode: a .pth on the repository root, so packages added later import without a reinstall
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" --config-settings editable_mode=compat
  touch "$stamp"
fi

# OpenSSL's arm64 headers and libcrypto for make selftest-aarch64 (the SM2 self-test cross-built and
# run under qemu-aarch64): the two .debs are downloaded and unpacked into a sysroot, not installed
# (libssl-dev:arm64 would need multiarch and pin the amd64 libssl to the same version); arm64 is
# added to dpkg's architectures only for the download and removed again. Best effort (~10 s): if it
# fails, that test skips.
aarch64_sysroot() {
  local sr=hsm/softtoken/build/aarch64-sysroot tmp added="" ok=""
  [ -f "$sr/usr/include/openssl/evp.h" ] && [ -e "$sr/usr/lib/aarch64-linux-gnu/libcrypto.so" ] && return 0
  command -v aarch64-linux-gnu-gcc >/dev/null && [ "$(dpkg --print-architecture)" = amd64 ] || return 0
  echo "setup: unpacking OpenSSL for arm64 into $sr"
  tmp=$(mktemp -d /tmp/racentre-arm64-XXXXXX) && chmod 777 "$tmp" || return 1
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64 && added=1
  fi
  $SUDO apt-get update -qq && (cd "$tmp" && $SUDO apt-get download -qq libssl-dev:arm64 libssl3:arm64) && ok=1
  if [ -n "$added" ]; then
    $SUDO dpkg --remove-architecture arm64
    $SUDO apt-get update -qq || true
  fi
  if [ -n "$ok" ]; then
    rm -rf "$sr.tmp" && mkdir -p "$sr.tmp" && for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$sr.tmp" || ok=""; done
    [ -n "$ok" ] && rm -rf "$sr" && mv "$sr.tmp" "$sr"
  fi
  rm -rf "$tmp" "$sr.tmp"
  [ -n "$ok" ]
}
aarch64_sysroot || echo "setup: no OpenSSL arm64 sysroot (make -C hsm/softtoken selftest-aarch64 and its test skip)"

make -s -C hsm/softtoken
echo "setup: ready (.venv/bin/racentre, hsm/softtoken/build/libracentre-softtoken.so)"
