#!/usr/bin/env bash
# Installs the real back ends the integration tests run against, into ./.backends:
#   - victoria-metrics: PromQL store with OTLP ingestion, from Debian's trixie suite
#   - promtool: Prometheus 3's config/rules checker, from Debian's sid suite (bookworm's
#     Prometheus predates the otlp: config block)
# Both are static Go binaries: apt-get download + dpkg -x, nothing installed system-wide.
# rotel (a Rust OTLP collector) comes from PyPI with the dev extra.
# Idempotent. Needs root for apt-get's cache dirs (CI and these machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.backends
mkdir -p "$dest"

fetch() {  # fetch SUITE PACKAGE PATH-IN-DEB NAME
  local suite=$1 pkg=$2 inner=$3 name=$4
  [ -x "$dest/$name" ] && return 0
  local tmp
  tmp=$(mktemp -d)
  cat > "$tmp/s.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  mkdir -p "$tmp/lists" "$tmp/cache/archives/partial"
  local opts=(-o "Dir::Etc::sourcelist=$tmp/s.sources" -o "Dir::Etc::sourceparts=-"
              -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache"
              -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$tmp" && apt-get "${opts[@]}" download -qq "$pkg" >/dev/null)
  dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/root"
  cp "$tmp/root/$inner" "$dest/$name"
  rm -rf "$tmp"
}

fetch trixie victoria-metrics usr/bin/victoria-metrics victoria-metrics
fetch sid promtool usr/bin/promtool promtool
"$dest/promtool" --version | head -n 1
test -x "$dest/victoria-metrics" && echo "victoria-metrics: $dest/victoria-metrics"

# chromium: the headless browser the report test screenshots report.html with (Debian's own
# package, installed system-wide; skipped when it is already there).
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium >/dev/null && echo "chromium: $(command -v chromium)"
