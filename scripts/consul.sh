#!/usr/bin/env bash
# Puts a real Consul binary (Debian bullseye's `consul` 1.8.7) in a cache folder outside git and
# prints its path. Tests that run real agents use it; `pnpm test` and .ci/run call it first.
#
# The machine's own apt set-up is never touched: apt runs with a private sources file (built here
# from the system's Debian sources, suite bookworm -> bullseye), private lists, cache and source
# parts. The mirror's host name comes from the system file at run time, never from this repo.
# Idempotent: when the binary is already there and runs, this does nothing else.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PEERLB_CONSUL_CACHE:-$root/node_modules/.cache/consul}"
bin="$cache/root/usr/bin/consul"

works() { [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; }

if works; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
# Several test workers (or engineers) may ask at once: one fetches, the others wait for it.
exec 9>"$cache/.lock"
flock 9
if works; then
  echo "$bin"
  exit 0
fi

system_sources="${PEERLB_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
if [[ ! -r "$system_sources" ]]; then
  echo "consul.sh: cannot read $system_sources (the machine's Debian sources), so cannot fetch consul" >&2
  exit 1
fi

work="$cache/apt"
rm -rf "$work" "$cache/root"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/sources.list.d" "$work/download" "$cache/root"
# bullseye still ships consul; bookworm (bookworm-updates, bookworm-security) does not.
sed -E 's/\bbookworm\b/bullseye/g' "$system_sources" >"$work/sources.list.d/debian.sources"

apt_options=(
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "Dir::Etc::SourceParts=$work/sources.list.d"
  -o "Dir::Etc::SourceList=/dev/null"
  -o "Dir::State::status=/dev/null"
  -o "APT::Sandbox::User=root"
  -o "Debug::NoLocking=1"
  -q
)

echo "consul.sh: fetching Debian bullseye's consul package (once; cached in $cache)" >&2
apt-get "${apt_options[@]}" update >&2
(cd "$work/download" && apt-get "${apt_options[@]}" download consul >&2)
deb="$(ls "$work"/download/consul_*.deb | head -n 1)"
dpkg -x "$deb" "$cache/root"
rm -rf "$work"

if ! works; then
  echo "consul.sh: unpacked $deb but $bin does not run" >&2
  exit 1
fi
echo "$bin"
