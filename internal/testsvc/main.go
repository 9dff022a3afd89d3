// Command testsvc is the small real HTTP service the tests run as systemd
// units (internal/systemdtest builds it). The service itself is
// internal/demosvc, which `rollout demo` also serves; see it for the
// endpoints and flags.
package main

import (
	"os"

	"github.com/rollout-sh/rollout/internal/demosvc"
)

func main() {
	os.Exit(demosvc.Main(os.Args[1:]))
}
