package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rollout-sh/rollout/internal/usermanager"
)

// chooseManager picks the user's own systemd user manager when it answers,
// else (as root) starts a private one inside dir, detached when keep.
func chooseManager(getenv func(string) string, dir string, keep bool) (*Manager, error) {
	why := "DBUS_SESSION_BUS_ADDRESS is unset and /run/user/" + strconv.Itoa(os.Getuid()) + "/bus does not exist"
	if addr := usermanager.SessionBusAddress(getenv); addr != "" {
		conn, err := usermanager.Probe(addr, 5*time.Second)
		if err == nil {
			conn.Close()
			unitDir, err := UserUnitDir(getenv)
			if err != nil {
				return nil, err
			}
			return &Manager{
				Describe: fmt.Sprintf("using your own systemd user manager (%s); the units go to %s and are removed at the end", addr, unitDir),
				Address:  addr,
				UnitDir:  unitDir,
			}, nil
		}
		why = fmt.Sprintf("the user manager at %s does not answer: %v", addr, err)
	}
	if os.Geteuid() != 0 {
		return nil, usageErrorf("no systemd user manager to run the demo on: %s. Run it from a login session where `systemctl --user` works, or as root, where the demo starts a private manager", why)
	}
	// The manager's cgroup is named after its directory: carrying the demo
	// directory's suffix, it tells whose it is (rollout-sd-<suffix>-N).
	suffix := strings.TrimPrefix(filepath.Base(dir), "rollout-demo-")
	m, err := usermanager.Start(usermanager.Options{Parent: dir, Prefix: "sd-" + suffix + "-", Detach: keep})
	if err != nil {
		return nil, fmt.Errorf("starting a private systemd user manager: %w", err)
	}
	return &Manager{
		Describe: fmt.Sprintf("using a private systemd user manager (pid %d) started for this demo, because %s", m.PID(), why),
		Address:  m.PrivateAddress,
		UnitDir:  m.UnitDir,
		Private:  m,
	}, nil
}

// UserUnitDir is where the user's own manager reads unit files from:
// $XDG_CONFIG_HOME/systemd/user, else ~/.config/systemd/user.
func UserUnitDir(getenv func(string) string) (string, error) {
	config := getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(config) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the user unit directory: %w", err)
		}
		config = filepath.Join(home, ".config")
	}
	return filepath.Join(config, "systemd", "user"), nil
}
