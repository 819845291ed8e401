#!/usr/bin/env bash
# Install the headless Chromium (and its WebDriver) that the explorer's browser test drives.
# Debian packages only (no browser downloads from elsewhere). Idempotent: quiet when both are
# already installed. Needs root (or passwordless sudo) for apt-get; without either it says so and
# leaves the decision to the test, which skips loudly only when no browser can be found at all.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
if { have chromium || have chromium-browser; } && have chromedriver; then
  exit 0
fi
if ! have apt-get; then
  echo "setup-browser: no apt-get on this machine; install Chromium and chromedriver yourself" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "setup-browser: not root and no passwordless sudo; cannot apt-get install chromium" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null; }; then
  echo "setup-browser: apt-get could not install chromium / chromium-driver (see above)" >&2
  exit 0  # the browser test says loudly that it did not run; the rest of the suite goes on
fi
echo "setup-browser: installed $(chromium --version 2>/dev/null || echo chromium)"
