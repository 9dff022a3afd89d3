// Package phase marks how far a process has come, for measuring where a
// run's wall time goes outside its restarts (start-up, locks, preflight,
// journal, exit). With ROLLOUT_PHASES set, each Mark prints one line to
// stderr: the time since the process started and the phase's name.
// Without it, Mark costs one atomic load.
package phase

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

var (
	start   = time.Now()
	enabled atomic.Bool
)

func init() { enabled.Store(os.Getenv("ROLLOUT_PHASES") != "") }

// Mark records that the process reached the phase name.
func Mark(name string) {
	if !enabled.Load() {
		return
	}
	fmt.Fprintf(os.Stderr, "rollout phase: %8.2fms %s\n", float64(time.Since(start).Microseconds())/1000, name)
}
