package steps

import (
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/rollout-sh/rollout/dsl"
	"github.com/rollout-sh/rollout/planner"
)

// needsFuncs say, per step type, what a step needs of the machine it runs
// on; the executor's preflight checks it before a run changes anything.
// A step type that is not listed needs nothing.
var needsFuncs = map[string]planner.NeedsFunc{
	TypeHealthCheck: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		return healthNeeds(svc, svc.Unit)
	},
	TypeBackupUnit: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		return planner.Needs{Units: []string{unitArg(args, svc)}}
	},
	TypeRsync: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		from, _ := knownString(args, "from")
		to, _ := knownString(args, "to")
		// The undo restores with rsync too.
		return planner.Needs{
			Programs: []planner.Program{{Name: "rsync", Use: "rsync step"}},
			Copies:   []planner.Copy{{From: from, To: to}},
		}
	},
	// A release copies from into a new directory it creates; only the
	// source is checked.
	TypeRelease: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		from, _ := knownString(args, "from")
		n := planner.Needs{Copies: []planner.Copy{{From: from}}}
		if svc != nil && svc.Host != nil {
			// The copy to a host is an rsync over ssh: rsync on both ends.
			n.Programs = []planner.Program{{Name: "rsync", Use: "release step (copy to a host)"}}
		}
		return n
	},
	// A switch needs the release it switches to (what `rollout rollback`
	// runs: a release removed since it was planned is reported before any
	// service is touched).
	TypeSwitchRelease: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		base, _ := knownString(args, "to")
		id, _ := knownString(args, "release")
		if base == "" || !validReleaseID(id) {
			return planner.Needs{}
		}
		return planner.Needs{Dirs: []string{releasePath(absOrSelf(base), id)}}
	},
	TypeExec: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		var n planner.Needs
		dir, _ := knownString(args, "dir")
		if argv := knownStrings(args, "command"); len(argv) > 0 {
			n.Programs = append(n.Programs, planner.Program{Name: argv[0], Dir: dir, Use: "command"})
		}
		if argv := knownStrings(args, "rollback_command"); len(argv) > 0 {
			n.Programs = append(n.Programs, planner.Program{Name: argv[0], Dir: dir, Use: "rollback_command"})
		}
		if dir != "" {
			n.Dirs = []string{dir}
		}
		return n
	},
	TypeNginxUpstream: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		prog, _ := knownString(args, "nginx")
		if prog == "" {
			prog = "nginx"
		}
		return planner.Needs{Programs: []planner.Program{{Name: prog, Use: "nginx -t and reload"}}}
	},
	// A unit job's undo and a reload_or_restart's rollback end with the
	// service's health check, so they need its program too.
	TypeReloadOrRestart: unitJobNeeds,
	TypeRestart:         unitJobNeeds,
	TypeStart:           unitJobNeeds,
	TypeStop:            unitJobNeeds,
	TypeStabilize: func(args map[string]cty.Value, svc *planner.Service) planner.Needs {
		n := healthNeeds(svc, svc.Unit)
		n.Units = []string{svc.Unit}
		return n
	},
}

func unitJobNeeds(args map[string]cty.Value, svc *planner.Service) planner.Needs {
	unit := unitArg(args, svc)
	n := healthNeeds(svc, unit)
	n.Units = []string{unit}
	return n
}

// healthNeeds is what the service's health check needs: its program for
// the exec kind, the unit for the systemd kind.
func healthNeeds(svc *planner.Service, unit string) planner.Needs {
	var n planner.Needs
	h := svc.Health
	if h == nil {
		return n
	}
	switch h.Kind {
	case dsl.HealthExec:
		if len(h.Command) > 0 {
			n.Programs = []planner.Program{{Name: h.Command[0], Use: "health check"}}
		}
	case dsl.HealthSystemd:
		n.Units = []string{unit}
	}
	return n
}

func unitArg(args map[string]cty.Value, svc *planner.Service) string {
	if u, ok := knownString(args, "unit"); ok && u != "" {
		return u
	}
	return svc.Unit
}

// knownStrings returns a known list(string) argument, or nil.
func knownStrings(args map[string]cty.Value, name string) []string {
	v, ok := knownArg(args, name)
	if !ok {
		return nil
	}
	l, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || l.IsNull() {
		return nil
	}
	var out []string
	for it := l.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			return nil
		}
		out = append(out, e.AsString())
	}
	return out
}
