package steps

import (
	"encoding/json"
	"strconv"

	"github.com/rollout-sh/rollout/executor"
)

// Journal records of the load balancer steps' undos, so that `rollout
// recover` puts back in traffic an instance that a dead run left drained
// (and drains again one it readmitted before it died).

// Kinds of the load balancer undo records.
const (
	RecordHAProxyReadmit = "haproxy_readmit"
	RecordHAProxyRedrain = "haproxy_redrain"
	RecordNginxRestore   = "nginx_restore"
)

func (t haproxyTarget) recordArgs() map[string]string {
	return map[string]string{"socket": t.api.addr, "backend": t.backend, "server": t.server, "timeout": t.timeout.String()}
}

// Record implements executor.Recordable.
func (u *haproxyReadmit) Record() executor.UndoRecord {
	return executor.UndoRecord{Kind: RecordHAProxyReadmit, Args: u.recordArgs()}
}

// Record implements executor.Recordable.
func (u *haproxyRedrain) Record() executor.UndoRecord {
	return executor.UndoRecord{Kind: RecordHAProxyRedrain, Args: u.recordArgs()}
}

func (u *nginxRestore) record(readmit bool) executor.UndoRecord {
	was, _ := json.Marshal(u.was)
	return executor.UndoRecord{Kind: RecordNginxRestore, Args: map[string]string{
		"file": u.file, "server": u.server, "upstream": u.upstream, "nginx": u.nginx,
		"conf": u.conf, "pid_file": u.pidFile, "timeout": u.timeout.String(),
		"was": string(was), "readmit": strconv.FormatBool(readmit),
	}}
}

// Record implements executor.Recordable.
func (u *nginxRestore) Record() executor.UndoRecord { return u.record(false) }

// Record implements executor.Recordable.
func (u *nginxReadmit) Record() executor.UndoRecord { return u.nginxRestore.record(true) }

// recoverLoadBalancer rebuilds a load balancer undo from its record;
// false when the kind is not one of them.
func recoverLoadBalancer(a *recordArgs) (executor.Undo, bool) {
	switch a.kind {
	case RecordHAProxyReadmit, RecordHAProxyRedrain:
		t := haproxyTarget{api: haproxyAPI{addr: a.need("socket")}, backend: a.need("backend"), server: a.need("server"),
			timeout: a.duration("timeout", defaultHAProxyTimeout)}
		if a.kind == RecordHAProxyReadmit {
			return &haproxyReadmit{haproxyTarget: t}, true
		}
		return &haproxyRedrain{haproxyTarget: t}, true
	case RecordNginxRestore:
		r := &nginxRestore{nginxTarget: nginxTarget{
			file: a.need("file"), server: a.need("server"), upstream: a.get("upstream"),
			nginx: a.get("nginx"), conf: a.get("conf"), pidFile: a.get("pid_file"),
			timeout: a.duration("timeout", defaultNginxTimeout),
		}}
		if r.nginx == "" {
			r.nginx = "nginx"
		}
		if r.pidFile == "" {
			r.pidFile = defaultNginxPidFile
		}
		a.jsonArg("was", &r.was, true)
		if a.get("readmit") == "true" {
			return &nginxReadmit{r}, true
		}
		return r, true
	}
	return nil, false
}
