// Command rollout restarts the services of a platform in dependency order,
// driven by reviewable HCL plans, and rolls back a service whose restart
// goes wrong. See README.md and ../../plans for examples.
package main

import (
	"os"
)

func main() {
	stopProfile := startCPUProfile()
	code := Main(os.Args[1:], systemStreams())
	stopProfile()
	os.Exit(code)
}
