#!/usr/bin/env bash
# The project's test command, the one README.md gives and .ci/run calls.
# It installs what the tests need on a fresh Debian machine, checks gofmt
# and go vet, then runs every test, real systemd included.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need besides Go: rsync (the rsync step), util-linux's
# unshare and systemd (a private `systemd --user` manager), dbus and
# dbus-user-session (its bus), tmux (a terminal for the live view's
# tests), curl (the shell-loop benchmark, bench/).
need=()
command -v tmux >/dev/null || need+=(tmux)
command -v curl >/dev/null || need+=(curl)
command -v rsync >/dev/null || need+=(rsync)
command -v unshare >/dev/null || need+=(util-linux)
[ -x /usr/lib/systemd/systemd ] || need+=(systemd)
command -v dbus-daemon >/dev/null || need+=(dbus)
[ -e /usr/lib/systemd/user/dbus.socket ] || need+=(dbus-user-session)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "scripts/test.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
  fi
fi

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt wants to rewrite:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 "$@" ./...
