package steps

import (
	"reflect"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
)

// A dead run's journal rebuilds the load balancer undos as they were,
// readmissions still readmissions (run after the service is back).
func TestLoadBalancerRecordsRoundTrip(t *testing.T) {
	hp := haproxyTarget{api: haproxyAPI{addr: "/run/haproxy/admin.sock"}, backend: "api", server: "s2", timeout: 7 * time.Second}
	ng := &nginxRestore{nginxTarget: nginxTarget{file: "/etc/nginx/conf.d/api.conf", server: "127.0.0.1:8002", upstream: "api",
		nginx: "/usr/sbin/nginx", conf: "/etc/nginx/nginx.conf", pidFile: "/run/nginx.pid", timeout: 9 * time.Second}, was: []bool{false, true}}
	for _, u := range []executor.Undo{&haproxyReadmit{hp}, &haproxyRedrain{hp}, ng, &nginxReadmit{ng}} {
		rec := u.(executor.Recordable).Record()
		back, err := Recover(rec, Deps{})
		if err != nil {
			t.Fatalf("Recover(%+v): %v", rec, err)
		}
		if !reflect.DeepEqual(back, u) {
			t.Errorf("%s: rebuilt %#v, want %#v", rec.Kind, back, u)
		}
		_, wasReadmit := u.(executor.Readmitter)
		if _, ok := back.(executor.Readmitter); ok != wasReadmit {
			t.Errorf("%s: Readmitter %v after the round trip, want %v", rec.Kind, ok, wasReadmit)
		}
	}
	if _, err := Recover(executor.UndoRecord{Kind: RecordHAProxyReadmit, Args: map[string]string{"socket": "/s", "backend": "api"}}, Deps{}); err == nil {
		t.Error("a record without server was rebuilt")
	}
	if _, err := Recover(executor.UndoRecord{Kind: RecordNginxRestore, Args: map[string]string{"file": "/f", "server": "a"}}, Deps{}); err == nil {
		t.Error("an nginx record without was was rebuilt")
	}
}
