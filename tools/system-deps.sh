#!/usr/bin/env bash
# System packages the test suite needs, from Debian: redis-server (the gateway's shared
# cache and limits are tested against a real Redis), chromium (the dashboard's
# end-to-end test drives a real headless browser) and postgresql (the lakehouse's state
# database and catalog are tested on a throwaway cluster: initdb and postgres from
# /usr/lib/postgresql/<version>/bin, run as the postgres user it creates when we are
# root). Installs only what is missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null 2>&1; then
    need+=(postgresql)
fi
if ((${#need[@]} == 0)); then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: install ${need[*]} with your package manager (no apt-get here)" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "system-deps: installing ${need[*]} (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
