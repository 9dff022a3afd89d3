package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollout-sh/rollout/steps"
)

// ReleasesOptions are the inputs of `rollout releases`.
type ReleasesOptions struct {
	IO    *IOStreams
	File  string
	Flags planFlags // --var, --plan, --service, --host
	JSON  bool
	// Hosts opens the plan's hosts (ssh); tests may replace it.
	Hosts func(ctx context.Context) (*steps.HostSet, error)
}

// NewCmdReleases builds `releases`.
func NewCmdReleases(io *IOStreams, runF func(*ReleasesOptions) error) *cobra.Command {
	opts := &ReleasesOptions{IO: io, Hosts: openHosts}
	cmd := &cobra.Command{
		Use:   "releases FILE [--service NAME]... [--host NAME]... [--var K=V]... [--json]",
		Short: "List each service's releases: which is current, which are marked bad",
		Long: `List the releases of each selected service whose pipeline has a release
step, oldest first: the release id, whether it is current, and whether
` + "`rollout rollback`" + ` left it (marked bad: the next rollback skips it). It reads
the release directories only; it changes nothing. The releases of an instance
on a host (SERVICE@HOST) are read on that host, over ssh.`,
		Example: `  rollout releases plans/platform.hcl --service sso.api
  rollout releases plans/platform.hcl --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if err := opts.Flags.check(cmd.Flags()); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return releasesRun(opts)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&opts.Flags.Vars, "var", nil, "set a plan variable, `K=V` (repeatable)")
	fs.StringVar(&opts.Flags.Plan, "plan", "", "the plan block to use when the file has several")
	fs.StringArrayVar(&opts.Flags.Services, "service", nil, "list only this service (repeatable)")
	fs.StringArrayVar(&opts.Flags.Hosts, "host", nil, "list only the instances on this host (repeatable)")
	fs.BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

// serviceReleases is one service in `rollout releases`.
type serviceReleases struct {
	Service  string          `json:"service"`
	Host     string          `json:"host,omitempty"`
	Base     string          `json:"base"`
	Current  string          `json:"current"`
	Releases []steps.Release `json:"releases"`
	Error    string          `json:"error,omitempty"`
}

func releasesRun(opts *ReleasesOptions) error {
	f := opts.Flags
	f.Deploy = true // release steps behind `if = run.deploy` count
	c, err := loadForRun(opts.IO, opts.File, &f)
	if err != nil {
		return err
	}
	hosts := newLazyHosts(opts.Hosts)
	defer hosts.close()
	var out []serviceReleases
	failed := false
	for _, svc := range c.Plan.Services {
		base, ok, err := steps.ReleaseBase(svc)
		if !ok {
			continue
		}
		sr := serviceReleases{Service: svc.Name, Base: base, Releases: []steps.Release{}}
		var h steps.Host
		if svc.Host != nil {
			sr.Host = svc.Host.Name
			if err == nil {
				h, err = hosts.get(svc.Host)
			}
		}
		if err == nil {
			var rels []steps.Release
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			rels, sr.Current, err = steps.ReleasesOn(ctx, h, base)
			cancel()
			if rels != nil {
				sr.Releases = rels
			}
		}
		if err != nil {
			sr.Error = err.Error()
			failed = true
		}
		out = append(out, sr)
	}
	if len(out) == 0 && !opts.JSON {
		fmt.Fprintf(opts.IO.ErrOut, "rollout: no selected service of %s deploys with a release step\n", opts.File)
		return nil
	}
	if opts.JSON {
		if out == nil {
			out = []serviceReleases{}
		}
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"services": out}); err != nil {
			return err
		}
	} else {
		writeReleases(opts.IO, out)
	}
	if failed {
		return silentExit(exitFailed)
	}
	return nil
}

func writeReleases(io *IOStreams, services []serviceReleases) {
	for i, s := range services {
		if i > 0 {
			fmt.Fprintln(io.Out)
		}
		fmt.Fprintf(io.Out, "%s  %s\n", s.Service, s.Base)
		if s.Error != "" {
			fmt.Fprintf(io.Out, "  cannot read: %s\n", s.Error)
			continue
		}
		if len(s.Releases) == 0 {
			fmt.Fprintln(io.Out, "  no releases yet")
			continue
		}
		tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
		for _, r := range s.Releases {
			var notes []string
			if r.Current {
				notes = append(notes, "current")
			}
			if r.Bad != "" {
				notes = append(notes, "bad: "+r.Bad)
			}
			if len(notes) == 0 {
				// No trailing cell: tabwriter would pad the line with spaces.
				fmt.Fprintf(tw, "  %s\n", r.ID)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\n", r.ID, strings.Join(notes, "; "))
		}
		tw.Flush()
	}
}
