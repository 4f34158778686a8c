#!/usr/bin/env bash
# Install valgrind (callgrind counts the benchmarks' instructions) when it is missing.
set -euo pipefail
command -v valgrind >/dev/null && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q valgrind
