#!/usr/bin/env bash
# Idempotent set-up on Debian 12: system packages (only those missing), the virtualenv at .venv,
# the Python packages, and the SM2 software token (hsm/softtoken). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc make libc6-dev libssl-dev openssl libp11-kit-dev p11-kit-modules softhsm2 opensc
              python3 python3-venv python3-dev openjdk-17-jdk-headless
              libbcprov-java libbcpkix-java libbcutil-java
              chromium chromium-driver fonts-noto-cjk
              valgrind)   # make -C hsm/softtoken ctgrind: constant-time check of the SM2 code

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
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

make -s -C hsm/softtoken
echo "setup: ready (.venv/bin/racentre, hsm/softtoken/build/libracentre-softtoken.so)"
