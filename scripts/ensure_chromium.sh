#!/usr/bin/env bash
# Make Debian's Chromium available for the dashboard's browser tests (Playwright drives
# /usr/bin/chromium; its own browser download is not used). Installs it with apt-get
# when missing and possible (root on Debian/Ubuntu); otherwise says why, and the
# browser tests skip with that reason. Never fails the caller.
set -u
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and no apt-get here; the browser tests will be skipped"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "chromium: not installed and not root; run 'apt-get install chromium' as root, or the browser tests will be skipped"
    exit 0
  fi
fi
echo "chromium: installing Debian's chromium package..."
if $SUDO apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
  echo "chromium: apt-get install chromium failed; the browser tests will be skipped"
fi
exit 0
