package steps

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkPollDetection measures what the fast-poll cap costs and buys:
// a service becomes ready at a random moment 0–300 ms into the poll, and
// the poll finds it detect-ms later, after probes/op probes. Run with
//
//	go test ./steps -run '^$' -bench BenchmarkPollDetection -benchtime 200x
func BenchmarkPollDetection(b *testing.B) {
	defer func(old time.Duration) { fastPollMax = old }(fastPollMax)
	for _, cap := range []time.Duration{20 * time.Millisecond, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("cap=%s", cap), func(b *testing.B) {
			fastPollMax = cap
			var late time.Duration
			probes := 0
			for b.Loop() {
				readyAt := time.Now().Add(time.Duration(rand.Int64N(int64(300 * time.Millisecond))))
				probe := func(context.Context) error {
					probes++
					if time.Now().Before(readyAt) {
						return fmt.Errorf("not ready")
					}
					return nil
				}
				if err := pollUntil(context.Background(), probe, time.Second); err != nil {
					b.Fatal(err)
				}
				late += time.Since(readyAt)
			}
			b.ReportMetric(float64(late.Microseconds())/1000/float64(b.N), "detect-ms")
			b.ReportMetric(float64(probes)/float64(b.N), "probes/op")
		})
	}
}

// BenchmarkProbeHTTPRefused is the cost of one probe of a service that is
// not listening yet (a refused connect), which the fast poll repeats.
func BenchmarkProbeHTTPRefused(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/health"
	ln.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	b.ReportAllocs()
	for b.Loop() {
		if err := probeHTTP(context.Background(), client, url, 0); err == nil {
			b.Fatal("probe of a closed port passed")
		}
	}
}
