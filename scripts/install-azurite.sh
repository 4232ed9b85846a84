#!/usr/bin/env bash
# Installs Azurite (Microsoft's Azure Storage emulator), pinned by tools/azurite/package-lock.json, into
# tools/azurite/node_modules, where the Azure tests and samples look for it. Needs Node.js and npm.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../tools/azurite"
if [ -x node_modules/.bin/azurite-blob ] && grep -q '"version": "3.37.0"' node_modules/azurite/package.json 2>/dev/null; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "Azurite needs Node.js and npm, which are not on PATH: install them (Debian: apt-get install nodejs npm), then run scripts/install-azurite.sh." >&2
  exit 1
fi
echo "Installing Azurite 3.37.0 into tools/azurite (npm ci)..."
# --ignore-scripts: Azurite needs no install script, and none should run on a build machine.
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
