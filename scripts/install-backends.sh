#!/usr/bin/env bash
# Installs the real back ends the integration tests run against, into ./.backends:
#   - VictoriaMetrics (PromQL store with OTLP ingestion) from Debian's trixie suite
#     (apt-get download + dpkg -x; the static binary runs on bookworm)
#   - rotel (a Rust OTLP collector) comes from PyPI with the dev extra: .venv/bin/python -m pip
# Idempotent; safe to run again. Needs root for apt-get (CI and these machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.backends
mkdir -p "$dest"
if [ ! -x "$dest/victoria-metrics" ]; then
  tmp=$(mktemp -d)
  cat > "$tmp/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  mkdir -p "$tmp/lists" "$tmp/cache/archives/partial"
  opts=(-o "Dir::Etc::sourcelist=$tmp/trixie.sources" -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache"
        -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$tmp" && apt-get "${opts[@]}" download -qq victoria-metrics >/dev/null)
  dpkg -x "$tmp"/victoria-metrics_*.deb "$tmp/root"
  bin="$tmp/root/usr/bin/victoria-metrics"
  cp "$bin" "$dest/victoria-metrics"
  rm -rf "$tmp"
fi
"$dest/victoria-metrics" -version | head -n 1
