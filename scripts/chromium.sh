# Sourced by scripts/test: make Debian's headless Chromium available for the widget tests.
# Playwright drives it through executable_path; no browser is ever downloaded.
# SMALLWINS_CHROMIUM may name another binary; otherwise /usr/bin/chromium, installed when missing.
set -euo pipefail

if [ -z "${SMALLWINS_CHROMIUM:-}" ]; then
  if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "chromium is not installed and I am not root: apt-get install chromium, or set SMALLWINS_CHROMIUM" >&2
      exit 1
    fi
    echo "installing chromium from Debian's packages..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
  SMALLWINS_CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)
fi
export SMALLWINS_CHROMIUM
echo "widget tests use Chromium at $SMALLWINS_CHROMIUM" >&2
