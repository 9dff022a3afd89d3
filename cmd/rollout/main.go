package main

import (
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/mattn/go-isatty"
	_ "github.com/spf13/cobra"

	_ "github.com/rollout-sh/rollout/steps"
)

func main() {}
