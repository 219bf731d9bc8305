#!/usr/bin/env bash
# The systemd end-to-end test (tests/systemd/test_systemd.py): digitd installed
# with scripts/install-service.sh in a booted Debian 12 container (systemd-nspawn).
# As root with apt-get it installs what it needs (systemd-container, debootstrap);
# where it cannot run it prints "tests/systemd: SKIPPED: <reason>" and exits 0.
#
#   tests/systemd/run.sh [PYTEST ARGS]      # e.g. -k watchdog
#
# Environment: DIGITD_SYSTEMD_CACHE (default /var/cache/digitd-systemd-test: the
# rootfs, a pip cache, the runs), DIGITD_SYSTEMD_KEEP=1 keeps the run's folder,
# DIGITD_REAL_DEV (the real digits, else ../shared/data/real-dev).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

skip() { printf 'tests/systemd: SKIPPED: %s\n' "$*" >&2; exit 0; }

[ "$(uname -s)" = Linux ] || skip "not Linux"
[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn, debootstrap, mounts): sudo tests/systemd/run.sh"
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || skip "${need[*]} not installed, and no apt-get to install them"
    printf 'tests/systemd: apt-get install %s\n' "${need[*]}" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null; } || skip "apt-get install ${need[*]} failed"
fi
python=.venv/bin/python
[ -x "$python" ] || make venv
reason="$("$python" tests/systemd/container.py why-not)" || skip "$reason"
started=$(date +%s)
status=0
DIGITD_SYSTEMD_TEST=1 nice "$python" -m pytest -p no:cacheprovider -v -s -rs tests/systemd "$@" || status=$?
printf 'tests/systemd: finished in %d s (exit %d)\n' "$(( $(date +%s) - started ))" "$status" >&2
exit "$status"
