package executor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// StatePaths are where the run lock and the crash journals of one systemd
// manager live. Both are keyed on the manager — the system manager, or a
// user manager by the bus it is reached through — never on
// $XDG_RUNTIME_DIR: two runs against one manager take one lock whatever
// their environments, and a run against another manager is not in the
// way.
type StatePaths struct {
	// Lock is in /run (a reboot clears it, and the kernel drops a dead
	// run's flock anyway).
	Lock string
	// Journals is on disk, so that a journal survives the reboot that
	// follows a crash: /var/lib/rollout/runs for the system manager,
	// $XDG_STATE_HOME/rollout/runs/<bus> (default ~/.local/state) for a
	// user manager.
	Journals string
	// Manager names the manager: "system", or the user bus's address.
	Manager string
}

// DefaultStatePaths are the paths of the manager `rollout run` talks to,
// from the process's environment.
func DefaultStatePaths(user bool) StatePaths { return StatePathsFor(user, os.Getenv) }

// StatePathsFor is DefaultStatePaths with the environment given.
//
// A user manager is reached as go-systemd reaches it: the bus in
// $DBUS_SESSION_BUS_ADDRESS, else /run/user/UID/bus. Its lock lives beside
// the bus socket (rollout/lock in the socket's directory, the manager's
// runtime directory), or under /tmp/rollout-UID for a bus that is not a
// socket path.
func StatePathsFor(user bool, getenv func(string) string) StatePaths {
	if !user {
		return StatePaths{Lock: "/run/rollout/lock", Journals: "/var/lib/rollout/runs", Manager: "system"}
	}
	uid := strconv.Itoa(os.Getuid())
	addr := getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" {
		addr = "unix:path=/run/user/" + uid + "/bus"
	}
	state := getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(state) {
		home := getenv("HOME")
		if !filepath.IsAbs(home) {
			home, _ = os.UserHomeDir()
		}
		if !filepath.IsAbs(home) {
			home = filepath.Join("/tmp", "rollout-"+uid)
		}
		state = filepath.Join(home, ".local", "state")
	}
	p := StatePaths{Manager: addr}
	if sock := busSocketPath(addr); sock != "" {
		if real, err := filepath.EvalSymlinks(sock); err == nil {
			sock = real
		}
		p.Lock = filepath.Join(filepath.Dir(sock), "rollout", "lock")
		p.Journals = filepath.Join(state, "rollout", "runs", pathKey(sock))
		return p
	}
	key := pathKey(addr)
	p.Lock = filepath.Join("/tmp", "rollout-"+uid, key, "lock")
	p.Journals = filepath.Join(state, "rollout", "runs", key)
	return p
}

// busSocketPath is the socket path of the first unix:path= entry of a
// D-Bus address ("unix:path=/run/user/1000/bus,guid=..."), or "".
func busSocketPath(addr string) string {
	for _, entry := range strings.Split(addr, ";") {
		transport, params, ok := strings.Cut(entry, ":")
		if !ok || transport != "unix" {
			continue
		}
		for _, kv := range strings.Split(params, ",") {
			if v, ok := strings.CutPrefix(kv, "path="); ok && filepath.IsAbs(v) {
				return filepath.Clean(v)
			}
		}
	}
	return ""
}

// pathKey turns a path or address into one file name:
// /run/user/1000/bus → run-user-1000-bus.
func pathKey(s string) string {
	var b strings.Builder
	for _, r := range strings.Trim(s, "/") {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	k := b.String()
	if len(k) > 200 {
		k = k[len(k)-200:]
	}
	if k == "" {
		k = "bus"
	}
	return k
}
