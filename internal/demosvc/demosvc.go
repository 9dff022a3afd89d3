// Package demosvc is a small real HTTP service: the services of
// `rollout demo` (served by the rollout binary's hidden `demo-service`
// command) and of the tests (internal/testsvc wraps Main). It behaves the
// way the files in -dir tell it to, so a test or a release can make it
// unhealthy, hang, or report a new version without restarting it:
//
//	GET /health   200 "ok"; 503 when DIR/UNHEALTHY exists, or once the
//	              service has served for longer than the duration in
//	              DIR/UNHEALTHY_AFTER ("2s": a release that fails after it
//	              went live); hangs until the client gives up when
//	              DIR/HANG exists
//	GET /version  DIR/VERSION trimmed, or "unknown"
//	GET /metrics  {"errors": {"rate": R}, "version": V}: R is the number in
//	              DIR/ERROR_RATE (0 without it), so that a release can be
//	              healthy and still fail a canary's analysis
//	any request   500 when DIR/BROKEN exists (a release that cannot serve)
//	GET /reloads  how many SIGHUPs (reloads) it has handled
//	GET /pid      its process id
//	GET /ready-at when it began to listen, in Unix nanoseconds (the
//	              benchmark's health-detection latency starts there)
//
// Flags -ready-delay, -exit-after and -fail-start simulate slow startup, a
// flapping service and a service that cannot start; -listen-early makes
// the slow startup one that accepts connections and holds them.
package demosvc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Main runs the service with command-line args (no program name) until
// SIGTERM or SIGINT and returns the process exit code: 0 after a clean
// shutdown, 1 when it cannot serve or was asked to fail, 2 on bad flags.
func Main(args []string) int {
	fs := flag.NewFlagSet("demo-service", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	dir := fs.String("dir", ".", "state directory (UNHEALTHY, HANG, VERSION)")
	readyDelay := fs.Duration("ready-delay", 0, "sleep before listening, to simulate startup")
	exitAfter := fs.Duration("exit-after", 0, "exit 1 after this long, to simulate a flapping service")
	failStart := fs.Bool("fail-start", false, "exit 1 at once")
	listenEarly := fs.Bool("listen-early", false, "open the port at once and hold requests until -ready-delay has passed, as an app that binds before it has warmed up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *failStart {
		fmt.Fprintln(os.Stderr, "demo-service: failing at start as asked (-fail-start)")
		return 1
	}

	var reloads atomic.Int64
	hup := make(chan os.Signal, 1)
	// Registered before the ready delay so that a reload during startup is
	// counted instead of killing the process (SIGHUP's default action).
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			reloads.Add(1)
			fmt.Println("reloaded")
		}
	}()

	var early net.Listener
	if *listenEarly {
		// Connections wait in the kernel's backlog until Serve: a
		// client (or a proxy) that connects now waits for the warm-up.
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo-service: %v\n", err)
			return 1
		}
		early = ln
	}
	if *readyDelay > 0 {
		time.Sleep(*readyDelay)
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() {
			fmt.Fprintln(os.Stderr, "demo-service: exiting as asked (-exit-after)")
			os.Exit(1)
		})
	}

	ln := early
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", *addr); err != nil {
			fmt.Fprintf(os.Stderr, "demo-service: %v\n", err)
			return 1
		}
	}
	readyAt := strconv.FormatInt(time.Now().UnixNano(), 10)
	fmt.Printf("listening on %s pid %d\n", ln.Addr(), os.Getpid())

	mux := http.NewServeMux()
	mux.Handle("/", NewHandler(*dir, &reloads))
	mux.HandleFunc("GET /ready-at", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, readyAt) })
	srv := &http.Server{Handler: mux}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-term
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Hanging /health requests would hold Shutdown for its whole
		// budget; Close after it so a stop never waits longer.
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "demo-service: %v\n", err)
		return 1
	}
	return 0
}

// NewHandler serves the endpoints above from dir; reloads is the SIGHUP count.
func NewHandler(dir string, reloads *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	began := time.Now()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if exists(filepath.Join(dir, "HANG")) {
			<-r.Context().Done()
			return
		}
		if exists(filepath.Join(dir, "UNHEALTHY")) {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		if b, err := os.ReadFile(filepath.Join(dir, "UNHEALTHY_AFTER")); err == nil {
			if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil && time.Since(began) > d {
				http.Error(w, "unhealthy", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join(dir, "VERSION"))
		v := strings.TrimSpace(string(b))
		if err != nil || v == "" {
			v = "unknown"
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		rate := 0.0
		if b, err := os.ReadFile(filepath.Join(dir, "ERROR_RATE")); err == nil {
			if f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil {
				rate = f
			}
		}
		b, _ := os.ReadFile(filepath.Join(dir, "VERSION"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"errors": {"rate": %s}, "version": %q}`+"\n", strconv.FormatFloat(rate, 'g', -1, 64), strings.TrimSpace(string(b)))
	})
	mux.HandleFunc("GET /reloads", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strconv.FormatInt(reloads.Load(), 10))
	})
	mux.HandleFunc("GET /pid", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strconv.Itoa(os.Getpid()))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exists(filepath.Join(dir, "BROKEN")) {
			http.Error(w, "broken release", http.StatusInternalServerError)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
