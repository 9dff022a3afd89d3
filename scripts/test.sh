#!/usr/bin/env bash
# The project's test command, the one README.md gives and .ci/run calls.
# It installs what the tests need on a fresh Debian machine, checks gofmt
# and go vet, then runs every test, real systemd included.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need besides Go: rsync (the rsync step), util-linux's
# unshare and systemd (a private `systemd --user` manager), dbus and
# dbus-user-session (its bus), tmux (a terminal for the live view's
# tests), openssh (the hosts of the fleet tests), curl (the shell-loop
# benchmark, bench/), haproxy and nginx (the load balancers in front of the
# zero-downtime tests' services).
need=()
command -v tmux >/dev/null || need+=(tmux)
command -v curl >/dev/null || need+=(curl)
command -v rsync >/dev/null || need+=(rsync)
# The load balancers of the zero-downtime tests (steps, cmd/rollout).
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || need+=(haproxy)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx)
# openssh: the fleet tests reach hosts made with fakehost (sshd) over ssh.
command -v ssh >/dev/null || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v unshare >/dev/null || need+=(util-linux)
[ -x /usr/lib/systemd/systemd ] || need+=(systemd)
command -v dbus-daemon >/dev/null || need+=(dbus)
[ -e /usr/lib/systemd/user/dbus.socket ] || need+=(dbus-user-session)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "scripts/test.sh: installing ${need[*]}"
    apt-get update -qq
    # Debian starts a service it installs (nginx on port 80, haproxy);
    # the tests run their own, on loopback, so deny those starts.
    deny=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      deny=/usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
      --no-install-recommends "${need[@]}" >/dev/null
    [ -z "$deny" ] || rm -f "$deny"
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

# -race: the engine runs services on goroutines, and a data race there is a
# wrong answer on a production box. -timeout bounds each package's tests
# well below CI's budget, so a hung test fails with its stack instead of
# the whole job being killed without one.
go test -race -count=1 -timeout "${TEST_TIMEOUT:-8m}" "$@" ./...

# In CI (CI=true or CI=1) every fuzz target also fuzzes beyond its seeds
# for FUZZTIME (default 10s; FUZZTIME=0 skips). Go fuzzes one target of one
# package at a time, so each runs on its own; targets are found in the
# source, so a new one is fuzzed without editing this script.
case "${CI:-}" in true|TRUE|True|1) ci=1 ;; *) ci=0 ;; esac
fuzztime=${FUZZTIME:-10s}
if [ "$ci" = 1 ] && [ "$fuzztime" != 0 ]; then
  grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
    pkg=./$(dirname "${file#./}")
    for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
      echo "scripts/test.sh: fuzzing $target in $pkg for $fuzztime"
      go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg"
    done
  done
fi
