// Package testenv is the tests' one policy for what they need from the
// machine (a systemd manager, root, a home directory, a program): where
// it is missing a test is skipped, saying why, except in CI, where a
// skipped proof would pass unnoticed and the test fails instead. Only tests
// import it.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// CI reports whether the tests run in CI: the CI environment variable is
// "true" or "1" (any case), as CI services set it.
func CI() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("CI"))) {
	case "true", "1":
		return true
	}
	return false
}

// Missing skips t because what it needs is missing, or fails it in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skipf("SKIPPING: %s", msg)
}

// NeedRoot skips t (or fails it in CI) unless the tests run as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "not root: %s", why)
	}
}

// NeedHome returns the home directory, or skips t (fails it in CI).
func NeedHome(t testing.TB) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		Missing(t, "no home directory: %v", err)
	}
	return home
}

// NeedProgram returns the path of a program, or skips t (fails it in CI).
func NeedProgram(t testing.TB, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s is not installed (%s)", name, why)
	}
	return p
}
