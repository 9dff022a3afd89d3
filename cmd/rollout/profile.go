package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile of the whole process to the file
// named by ROLLOUT_CPUPROFILE, for measuring the engine in a real run
// (docs/performance.md); the returned function ends it. Without the
// variable it does nothing.
func startCPUProfile() (stop func()) {
	path := os.Getenv("ROLLOUT_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rollout: ROLLOUT_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
