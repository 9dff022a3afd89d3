package executor

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/rollout-sh/rollout/planner"
)

// ErrStopTimedOut is wrapped by an undo whose stop job got no result in
// its bound: the unit's processes may hang, and the manual steps say how
// to kill them.
var ErrStopTimedOut = errors.New("the stop job did not finish in time")

// manualRollback tells a person how to finish a rollback that failed, in
// the order of the reference's rollback flow: stop (kill, if the stop is
// what hung), restore what the rollback could not (the Describe texts of
// the undos that failed), reload systemd, start, verify. Unit names are
// shell-quoted: systemd escapes dashes in instance names as \x2d.
func manualRollback(svc *planner.Service, unrestored []string, causes []error, userManager bool) string {
	// Reading state needs no root; changing it does.
	systemctl, query, journalctl := "sudo systemctl", "systemctl", "sudo journalctl -u"
	if userManager {
		systemctl, query, journalctl = "systemctl --user", "systemctl --user", "journalctl --user-unit"
	}
	unit := svc.Unit
	if unit == "" {
		unit = svc.Name
	}
	unit = shellQuote(unit)
	stopHung := false
	for _, err := range causes {
		if errors.Is(err, ErrStopTimedOut) {
			stopHung = true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Rollback of %s failed; finish it by hand:\n", svc.Name)
	b.WriteString("# 1. Stop the service\n")
	if stopHung {
		b.WriteString("#    (its stop hung: kill its processes first, then stop it)\n")
		fmt.Fprintf(&b, "%s kill --signal=SIGKILL %s\n", systemctl, unit)
	}
	fmt.Fprintf(&b, "%s stop %s\n", systemctl, unit)
	b.WriteString("# 2. Restore what the rollback could not:\n")
	for _, d := range unrestored {
		fmt.Fprintf(&b, "#    - %s\n", d)
	}
	b.WriteString("#    (a unit file: cp <unit file>.backup <unit file>)\n")
	b.WriteString("# 3. Reload systemd and start the service\n")
	fmt.Fprintf(&b, "%s daemon-reload\n", systemctl)
	fmt.Fprintf(&b, "%s start %s\n", systemctl, unit)
	b.WriteString("# 4. Verify\n")
	fmt.Fprintf(&b, "%s status %s\n", query, unit)
	if check := healthCommand(svc, query); check != "" {
		b.WriteString(check + "\n")
	}
	fmt.Fprintf(&b, "%s %s -n 100", journalctl, unit)
	return b.String()
}

// healthCommand is the shell command that checks the service's health by
// hand, as its health block says.
func healthCommand(svc *planner.Service, systemctl string) string {
	h := svc.Health
	if h == nil {
		return ""
	}
	switch h.Kind {
	case "http":
		if h.URL != "" {
			return "curl -fsS " + shellQuote(h.URL)
		}
	case "tcp":
		if host, port, err := net.SplitHostPort(h.Address); err == nil {
			return "nc -z " + shellQuote(host) + " " + shellQuote(port)
		}
	case "exec":
		if len(h.Command) > 0 {
			quoted := make([]string, len(h.Command))
			for i, a := range h.Command {
				quoted[i] = shellQuote(a)
			}
			return strings.Join(quoted, " ")
		}
	case "systemd":
		return fmt.Sprintf("%s is-active %s", systemctl, shellQuote(svc.Unit))
	}
	return ""
}

// shellQuote quotes s for a POSIX shell when it needs it, so that a person
// can paste the command.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
