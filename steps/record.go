package steps

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/planner"
)

// Recovery records: each undo type writes itself down as an
// executor.UndoRecord (the run journal), and Recover builds it back in a
// later process, `rollout recover`, after the run that pushed it died.

// Kinds of undo records.
const (
	RecordRestoreUnitFile = "restore_unit_file"
	RecordRestoreSnapshot = "restore_snapshot"
	RecordSwitchRelease   = "switch_release"
	RecordReopenUnit      = "reopen_unit"
	RecordStopUnit        = "stop_unit"
	RecordRunCommand      = "run_command"
	RecordIrreversible    = "irreversible"
)

// Record implements executor.Recordable.
func (u *backupUnitUndo) Record() executor.UndoRecord {
	return executor.UndoRecord{Kind: RecordRestoreUnitFile, Args: map[string]string{
		"path": u.path, "file": u.file, "backup": u.backup,
	}}
}

// Record implements executor.Recordable.
func (u *rsyncUndo) Record() executor.UndoRecord {
	args := map[string]string{"to": u.to, "snapshot": u.snapshot, "complete": strconv.FormatBool(u.complete)}
	if len(u.exclude) > 0 {
		x, _ := json.Marshal(u.exclude)
		args["exclude"] = string(x)
	}
	return executor.UndoRecord{Kind: RecordRestoreSnapshot, Args: args}
}

// Record implements executor.Recordable. What Commit does is not
// recorded: a run that died never got to commit.
func (u *releaseUndo) Record() executor.UndoRecord {
	return executor.UndoRecord{Kind: RecordSwitchRelease, Args: map[string]string{
		"base": u.base, "back": u.back, "discard": u.discard,
	}}
}

// Record implements executor.Recordable.
func (u *reopenUndo) Record() executor.UndoRecord {
	args := u.unitJob.recordArgs()
	args["stop"] = strconv.FormatBool(u.stop)
	return executor.UndoRecord{Kind: RecordReopenUnit, Args: args}
}

// Record implements executor.Recordable.
func (u *stopUndo) Record() executor.UndoRecord {
	return executor.UndoRecord{Kind: RecordStopUnit, Args: u.unitJob.recordArgs()}
}

// Record implements executor.Recordable.
func (u *commandUndo) Record() executor.UndoRecord {
	return executor.UndoRecord{Kind: RecordRunCommand, Args: u.cmd.recordArgs()}
}

// Record implements executor.Recordable.
func (u irreversibleUndo) Record() executor.UndoRecord {
	return executor.UndoRecord{Kind: RecordIrreversible, Args: map[string]string{"name": u.name}}
}

// InFlightRecord implements executor.InFlightRecordable: if the run dies
// during a restart, recovery stops the unit, lets the earlier undos
// restore its files, starts it and verifies its health, whether or not
// the restart happened.
func (s *unitJobStep) InFlightRecord(*executor.Env) (executor.UndoRecord, bool) {
	if s.op != OpRestart {
		// A start or stop undoes differently depending on the unit's
		// state before it, which is known only once Do has read it.
		return executor.UndoRecord{}, false
	}
	return s.reopenUndo(true).Record(), true
}

// InFlightRecord implements executor.InFlightRecordable, as a restart's.
func (s *reloadOrRestartStep) InFlightRecord(*executor.Env) (executor.UndoRecord, bool) {
	return s.reopenUndo(true).Record(), true
}

// InFlightRecord implements executor.InFlightRecordable: a command that
// died half-way is undone as a failed one is, by its rollback_command.
func (s *execStep) InFlightRecord(*executor.Env) (executor.UndoRecord, bool) {
	u, ok := s.undo().(executor.Recordable)
	if !ok {
		return executor.UndoRecord{}, false
	}
	return u.Record(), true
}

// InFlightRecord implements executor.InFlightRecordable: before the
// snapshot is taken, recovery must remove a partial one and may trust
// that the working directory is untouched; Do journals the complete
// snapshot before the deploy changes anything.
func (s *rsyncStep) InFlightRecord(env *executor.Env) (executor.UndoRecord, bool) {
	if s.from == "" || s.to == "" {
		return executor.UndoRecord{}, false
	}
	return s.undo(env, false).Record(), true
}

func (j *unitJob) recordArgs() map[string]string {
	args := map[string]string{"unit": j.unit, "timeout": j.timeout.String()}
	if j.rollbackTimeout > 0 {
		args["rollback_timeout"] = j.rollbackTimeout.String()
	}
	if h, err := json.Marshal(j.health); err == nil {
		args["health"] = string(h)
	}
	return args
}

func (c command) recordArgs() map[string]string {
	args := map[string]string{"dir": c.dir, "timeout": c.timeout.String()}
	argv, _ := json.Marshal(c.argv)
	args["argv"] = string(argv)
	if len(c.env) > 0 {
		env, _ := json.Marshal(c.env)
		args["env"] = string(env)
	}
	return args
}

// Recover rebuilds the Undo a record describes, talking to systemd
// through deps. It never panics on a malformed record: it returns an error
// naming what is missing, and the recovery reports the undo as failed.
func Recover(rec executor.UndoRecord, deps Deps) (executor.Undo, error) {
	return recoverOn(rec, deps, Local{SD: deps.Systemd})
}

// RecoverOn is Recover for an instance on host (nil: where rollout runs):
// the undo acts on that host, through deps.Hosts.
func RecoverOn(rec executor.UndoRecord, deps Deps, host *planner.Host) (executor.Undo, error) {
	if host == nil {
		return Recover(rec, deps)
	}
	if deps.Hosts == nil {
		return nil, fmt.Errorf("record %s: host %s is not reachable in this run", rec.Kind, host.Name)
	}
	h, err := deps.Hosts(host)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", host.Name, err)
	}
	return recoverOn(rec, Deps{Systemd: h.Systemd()}, h)
}

func recoverOn(rec executor.UndoRecord, deps Deps, h Host) (executor.Undo, error) {
	a := recordArgs{kind: rec.Kind, args: rec.Args}

	var u executor.Undo
	switch rec.Kind {
	case RecordRestoreUnitFile:
		path := a.need("path")
		file := a.get("file")
		if file == "" {
			file = path
		}
		u = &backupUnitUndo{path: path, file: file, backup: a.need("backup"), host: h, sd: deps.Systemd}
	case RecordRestoreSnapshot:
		ru := &rsyncUndo{to: a.need("to"), snapshot: a.need("snapshot"), complete: a.get("complete") != "false"}
		a.jsonArg("exclude", &ru.exclude, false)
		u = ru
		if h != nil && h.Name() != "" {
			u = &remoteRsyncUndo{host: h, to: ru.to, snapshot: ru.snapshot, exclude: ru.exclude}
		}
	case RecordSwitchRelease:
		u = &releaseUndo{base: a.need("base"), back: a.get("back"), discard: a.get("discard"), fs: releaseFSOn(h)}
		for _, id := range []string{a.get("back"), a.get("discard")} {
			if id != "" && !validReleaseID(id) && a.err == nil {
				a.err = fmt.Errorf("record %s: %q is not a release id", rec.Kind, id)
			}
		}
	case RecordReopenUnit:
		j := a.unitJob(deps)
		u = &reopenUndo{unitJob: j, stop: a.get("stop") != "false"}
	case RecordStopUnit:
		u = &stopUndo{unitJob: a.unitJob(deps)}
	case RecordRunCommand:
		c := command{dir: a.get("dir"), timeout: a.duration("timeout", defaultExecTimeout)}
		a.jsonArg("argv", &c.argv, true)
		a.jsonArg("env", &c.env, false)
		if a.err == nil && (len(c.argv) == 0 || c.argv[0] == "") {
			a.err = fmt.Errorf("record %s: empty argv", rec.Kind)
		}
		u = &commandUndo{host: h, cmd: c}
	case RecordIrreversible:
		u = irreversibleUndo{name: rec.Step}
		if n := a.get("name"); n != "" {
			u = irreversibleUndo{name: n}
		}
	case RecordBlueGreen:
		u = recoverBlueGreen(&a, deps)
	default:
		lb, ok := recoverLoadBalancer(&a)
		if !ok {
			return nil, fmt.Errorf("unknown undo record kind %q", rec.Kind)
		}
		u = lb
	}
	if a.err != nil {
		return nil, a.err
	}
	if needsBackend(rec.Kind) && deps.Systemd == nil {
		return nil, fmt.Errorf("record %s: no systemd backend", rec.Kind)
	}
	return u, nil
}

func needsBackend(kind string) bool {
	return kind == RecordRestoreUnitFile || kind == RecordReopenUnit || kind == RecordStopUnit || kind == RecordBlueGreen
}

// recordArgs reads a record's arguments, keeping the first problem.
type recordArgs struct {
	kind string
	args map[string]string
	err  error
}

func (a *recordArgs) get(name string) string { return a.args[name] }

func (a *recordArgs) need(name string) string {
	v := a.args[name]
	if v == "" && a.err == nil {
		a.err = fmt.Errorf("record %s: argument %q is missing", a.kind, name)
	}
	return v
}

func (a *recordArgs) duration(name string, def time.Duration) time.Duration {
	s := a.args[name]
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		if a.err == nil {
			a.err = fmt.Errorf("record %s: argument %q: %q is not a positive duration", a.kind, name, s)
		}
		return def
	}
	return d
}

func (a *recordArgs) jsonArg(name string, v any, required bool) {
	s := a.args[name]
	if s == "" {
		if required && a.err == nil {
			a.err = fmt.Errorf("record %s: argument %q is missing", a.kind, name)
		}
		return
	}
	if err := json.Unmarshal([]byte(s), v); err != nil && a.err == nil {
		a.err = fmt.Errorf("record %s: argument %q: %w", a.kind, name, err)
	}
}

func (a *recordArgs) unitJob(deps Deps) unitJob {
	j := unitJob{unit: a.need("unit"), timeout: a.duration("timeout", defaultJobTimeout), sd: deps.Systemd, check: CheckHealth}
	j.rollbackTimeout = a.duration("rollback_timeout", rollbackJobTimeout(j.timeout))
	var h planner.Health
	if a.get("health") != "" {
		a.jsonArg("health", &h, false)
		j.health = h
	} else {
		// No health recorded: the unit being active is the check.
		j.health = serviceHealth(&planner.Service{})
	}
	return j
}
