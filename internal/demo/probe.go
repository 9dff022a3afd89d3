package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// findPortBase finds base such that base+1 ... base+n are free on
// 127.0.0.1 at the moment.
func findPortBase(n int) (int, error) {
	for try := 0; try < 100; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		base := ln.Addr().(*net.TCPAddr).Port - 1
		ln.Close()
		if base+n > 65535 {
			continue
		}
		free := true
		for p := base + 1; p <= base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return base, nil
		}
	}
	return 0, fmt.Errorf("found no %d free consecutive TCP ports on 127.0.0.1", n)
}

// waitHealthy polls /health until it answers 200.
func waitHealthy(ctx context.Context, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		code, _, err := get(ctx, port, "/health")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("/health answered %d", code)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %v", timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// get asks a demo service on 127.0.0.1:port for path: its status and the
// start of its body.
func get(ctx context.Context, port int, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// Probe asks the service what it runs now: its version ("?" when it does
// not say) and its health ("ok", the status code of an unhealthy answer,
// or "down" when it does not answer).
func Probe(ctx context.Context, s *Service) (version, health string) {
	version = "?"
	if code, body, err := get(ctx, s.Port, "/version"); err == nil && code == http.StatusOK {
		version = body
	}
	health = "down"
	if code, _, err := get(ctx, s.Port, "/health"); err == nil {
		health = "ok"
		if code != http.StatusOK {
			health = strconv.Itoa(code)
		}
	}
	return version, health
}
