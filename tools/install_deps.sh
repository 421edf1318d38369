#!/bin/sh
# Installs what glmoe needs to build and test, from Debian's packages (Debian 12 / Ubuntu 24.04).
# Runs apt-get through sudo when not root.
#   build:     compiler, cmake, pkg-config, jansson, OpenBLAS, Oniguruma, utf8proc, zlib,
#              libmicrohttpd (glmoe serve), libedit (chat)
#   tests/server: python3-venv (the test makes a venv with the openai client from PyPI)
#   make fuzz: clang-14 with its libFuzzer/sanitizer runtime (libclang-rt-14-dev) and OpenMP (libomp-14-dev)
#   make valgrind: valgrind
set -e
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config python3 python3-venv \
    libjansson-dev libmicrohttpd-dev libopenblas-dev libonig-dev libutf8proc-dev zlib1g-dev libedit-dev \
    clang-14 libclang-rt-14-dev libomp-14-dev valgrind >/dev/null
echo "install_deps: done"
