#!/usr/bin/env bash
# Installs Debian's chromium for the browser test of the mesh's web view (test/mesh-web.test.ts),
# when it is missing. A step of `pnpm test`, before vitest runs. playwright-core drives this
# browser; no test tool downloads a browser of its own.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  # Not root or not Debian: the browser test explains itself and fails; nothing to do here.
  echo "ensure-chromium: $CHROMIUM is missing; install Debian's chromium (apt-get install chromium) as root" >&2
  exit 0
fi
echo "ensure-chromium: installing chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
"$CHROMIUM" --version >&2
