#!/usr/bin/env bash
# Install digitd as a systemd service for THIS checkout.
#
#   sudo scripts/install-service.sh [--user NAME] [--config PATH] [--prefix DIR]
#   scripts/install-service.sh --dry-run      # print the rendered units, change nothing
#   scripts/install-service.sh --output DIR   # write the rendered units to DIR, nothing else
#
# Renders scripts/digitd.service and scripts/digitd@.service with the absolute
# paths of this checkout's .venv/bin/digitd and config, and the inbox, outbox
# and model that config names; then (as root) creates the service user if
# missing, gives its group write access to the inbox and outbox, installs
# both units into DIR (default /etc/systemd/system) and runs
# `systemctl daemon-reload`. It enables nothing: it prints the commands.
# Every change is printed as it is made.
set -euo pipefail

say() { printf 'install-service: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "$0"
    cat <<'EOF'
Options:
  --user NAME    user (and group) the service runs as (default: digitd)
  --config PATH  config file (default: config.yaml of this checkout)
  --prefix DIR   where the unit files go (default: /etc/systemd/system)
  --dry-run      print the rendered units on stdout; change nothing
  --output DIR   write the rendered units into DIR; change nothing else
  -h, --help     this help
EOF
}

checkout="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
user=digitd
config="$checkout/config.yaml"
prefix=/etc/systemd/system
dry_run=0
output=""
while [ $# -gt 0 ]; do
    case "$1" in
        --user) [ $# -ge 2 ] || die "--user needs a NAME"; user="$2"; shift 2 ;;
        --user=*) user="${1#*=}"; shift ;;
        --config) [ $# -ge 2 ] || die "--config needs a PATH"; config="$2"; shift 2 ;;
        --config=*) config="${1#*=}"; shift ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a DIR"; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#*=}"; shift ;;
        --dry-run) dry_run=1; shift ;;
        --output) [ $# -ge 2 ] || die "--output needs a DIR"; output="$2"; shift 2 ;;
        --output=*) output="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[[ "$user" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user '$user' is not a valid user name"

python="$checkout/.venv/bin/python"
digitd="$checkout/.venv/bin/digitd"
[ -x "$digitd" ] || die "$digitd not found: install the project first (make venv-run)"
config="$(cd "$(dirname "$config")" 2>/dev/null && pwd -P)/$(basename "$config")" \
    || die "config folder of $config does not exist"
# The interpreter systemd really runs: .venv/bin/python is a link to it, and its
# standard library is under sys.base_prefix (pyenv puts both under a home).
real_python="$(readlink -f "$python")"
base_prefix="$("$python" -c 'import sys; print(sys.base_prefix)' 2>/dev/null)" \
    || die "$python does not run: rebuild the venv (make venv-run)"

# Render both units into $tmp (Python: paths may hold spaces, quotes or '%').
units=("$checkout/scripts/digitd.service" "$checkout/scripts/digitd@.service")
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" - "$tmp" "$checkout" "$digitd" "$config" "$user" "$real_python" "$base_prefix" \
    "${units[@]}" <<'PY' || exit 2
import re
import sys
from pathlib import Path

from digitd.config import load_config
from digitd.errors import DigitdError

out, checkout, digitd, config_path, user, real_python, base_prefix, *units = sys.argv[1:]
try:
    config = load_config(config_path)
except DigitdError as exc:
    sys.exit(f"install-service: error: {exc.message}")


def quoted(path, in_exec=False, prefix=""):
    """A path as one word of a unit file line: % doubled, quoted when needed."""
    text = prefix + str(path).replace("%", "%%")
    if in_exec:
        text = text.replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


homes = ("/home", "/root", "/run/user")
paths = [checkout, digitd, config_path, config.inbox, config.outbox, config.model,
         real_python, base_prefix]
under_home = any(str(p) == h or str(p).startswith(h + "/") for p in map(str, paths) for h in homes)
values = {
    "@CHECKOUT@": str(checkout).replace("%", "%%"),
    "@DIGITD@": quoted(digitd, in_exec=True),
    "@CONFIG@": quoted(config_path, in_exec=True),
    "@INBOX@": quoted(config.inbox),
    "@OUTBOX@": quoted(config.outbox),
    # "-": a missing folder does not fail the sandbox set-up (exit 226, restarted
    # forever); digitd then refuses to start with one clear line and exit 2
    "@RW_INBOX@": quoted(config.inbox, prefix="-"),
    "@RW_OUTBOX@": quoted(config.outbox, prefix="-"),
    "@USER@": user,
    "@GROUP@": user,
    # a checkout, its folders or the venv's real interpreter under /home (or
    # /root) must stay visible, read-only except for the ReadWritePaths;
    # elsewhere /home is hidden entirely
    "@PROTECT_HOME@": "read-only" if under_home else "yes",
}
for unit in units:
    text = Path(unit).read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        sys.exit(f"install-service: error: {unit}: unknown placeholder {left[0]}")
    (Path(out) / Path(unit).name).write_text(text)
for key in ("inbox", "outbox", "model"):
    (Path(out) / key).write_text(str(getattr(config, key)))
PY
inbox="$(cat "$tmp/inbox")"
outbox="$(cat "$tmp/outbox")"
model="$(cat "$tmp/model")"

# Can the service user execute the real interpreter? If not, systemd fails with
# status=203/EXEC "Permission denied": refuse to install (a dry run only warns).
# With the user already there runuser asks the kernel; a user still to be made
# has only its own new group, so the "other" permission bits decide.
cannot_run() {
    local where=""
    if getent passwd "$user" >/dev/null && command -v runuser >/dev/null \
            && runuser -u "$user" -- "$real_python" -c 'import os, encodings' >/dev/null 2>&1; then
        return 1
    fi
    # the first folder on the way that others cannot search (for the message)
    where="$("$python" - "$real_python" "$base_prefix" <<'PY'
import os, stat, sys
for target in sys.argv[1:]:
    parts = os.path.abspath(target).split("/")
    for i in range(1, len(parts)):
        folder = "/".join(parts[:i]) or "/"
        mode = os.stat(folder).st_mode
        if not mode & stat.S_IXOTH:
            print(f"{folder} is mode {stat.S_IMODE(mode):o}")
            sys.exit(0)
    if os.path.isfile(target) and os.stat(target).st_mode & 0o005 != 0o005:
        print(f"{target} is mode {stat.S_IMODE(os.stat(target).st_mode):o}")
        sys.exit(0)
sys.exit(1)
PY
)" || { getent passwd "$user" >/dev/null || return 1; where="runuser says no"; }
    printf '%s' "user '$user' cannot execute the venv's interpreter $real_python ($where): build .venv with a Python that user can run, e.g. PYTHON=/usr/bin/python3.11 make venv-run"
}
if why="$(cannot_run)"; then
    [ "$dry_run" = 1 ] || [ -n "$output" ] || die "$why"
    say "warning: $why"
fi

if [ "$dry_run" = 1 ]; then
    for name in digitd.service digitd@.service; do
        printf '# ----- %s/%s -----\n' "$prefix" "$name"
        cat "$tmp/$name"
    done
    say "dry run: nothing installed (config $config; inbox $inbox; outbox $outbox)"
    exit 0
fi
if [ -n "$output" ]; then
    mkdir -p "$output"
    for name in digitd.service digitd@.service; do
        cp "$tmp/$name" "$output/$name"
        say "wrote $output/$name"
    done
    exit 0
fi

[ "$(id -u)" = 0 ] || die "installing needs root: sudo $0 $* (or --dry-run to look first)"

if ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$user"
    say "created system user and group '$user'"
else
    say "user '$user' exists"
fi
for folder in "$inbox" "$outbox"; do
    if [ ! -d "$folder" ]; then
        mkdir -p "$folder"
        say "created $folder"
    fi
done
# The service renames files in the inbox (claims them) and writes the outbox;
# people copying scans in need write access too: one shared group, setgid
# folders so new files keep it.
chgrp "$user" "$inbox" && chmod g+rwxs "$inbox"
say "inbox $inbox: group $user, group-writable, setgid"
[ ! -d "$inbox/.digitd" ] || { chgrp -R "$user" "$inbox/.digitd"; chmod -R g+rwX "$inbox/.digitd"; }
chgrp -R "$user" "$outbox" && chmod -R g+rwX "$outbox" && find "$outbox" -type d -exec chmod g+s {} +
say "outbox $outbox: group $user, group-writable, setgid (recursively)"
if command -v runuser >/dev/null \
        && ! err="$(runuser -u "$user" -- "$digitd" check-config --config "$config" 2>&1 >/dev/null)"; then
    say "warning: user '$user' cannot run digitd from this checkout: ${err##*$'\n'}"
    say "warning: the checkout (venv, config, model $model) must be readable by '$user'"
fi

mkdir -p "$prefix"
for name in digitd.service digitd@.service; do
    install -m 0644 "$tmp/$name" "$prefix/$name"
    say "installed $prefix/$name"
done
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    say "ran systemctl daemon-reload"
else
    say "systemd is not running here: skipped systemctl daemon-reload"
fi
cat >&2 <<EOF
install-service: done. Next:
  systemctl enable --now digitd            # one instance
  systemctl enable --now digitd@1 digitd@2 # or several on the same inbox (not both)
  journalctl -u digitd -f                  # its log
  cat $outbox/status.json                  # its counts
EOF
