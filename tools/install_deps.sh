#!/bin/sh
# Installs what glmoe needs to build and test, from Debian's packages (Debian 12 / Ubuntu 24.04).
# Runs apt-get through sudo when not root.
set -e
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config python3 \
    libjansson-dev libopenblas-dev libonig-dev libutf8proc-dev zlib1g-dev >/dev/null
echo "install_deps: done"
