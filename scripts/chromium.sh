#!/usr/bin/env bash
# Debian's chromium for the console's browser tests (tests/ui), installed when missing.
# Debian/Ubuntu as root only; elsewhere it says what is missing and the UI tests skip.
# Playwright drives this browser: never `playwright install` (it downloads browsers).
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: /usr/bin/chromium missing and not installable here (needs root and apt-get);" \
         "the console tests will be skipped" >&2
    exit 0
fi
echo "installing chromium (apt-get)"
if ! { apt-get update -qq \
       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    echo "warning: installing chromium failed; the console tests will be skipped" >&2
fi
