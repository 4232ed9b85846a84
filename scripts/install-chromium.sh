#!/usr/bin/env bash
# Debian's Chromium, for the streaming UI's browser test (tests/PipelineDsl.IntegrationTests/UiTests.cs), which drives it
# through Microsoft.Playwright pointed at /usr/bin/chromium (a browser download by Playwright itself does not work here).
# Does nothing when Chromium is already installed; PIPELINEDSL_CHROMIUM names another binary.
set -euo pipefail
if [ -n "${PIPELINEDSL_CHROMIUM:-}" ] && [ -x "$PIPELINEDSL_CHROMIUM" ]; then exit 0; fi
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is needed for the UI test: install it (Debian: apt-get install chromium) or set PIPELINEDSL_CHROMIUM." >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
command -v chromium
