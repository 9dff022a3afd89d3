package loadgen

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestCountsFailedAndSlow(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch k := n.Add(1); {
		case k%10 == 3:
			http.Error(w, "down", http.StatusBadGateway)
		case k == 5:
			time.Sleep(1200 * time.Millisecond)
		}
	}))
	defer srv.Close()
	l, err := Start(Options{URL: srv.URL, Workers: 2, MaxRequests: 40, Pause: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	r := l.Stop()
	if r.Requests != 40 || r.Failed != 4 || r.OK != 36 || r.Slow != 1 {
		t.Errorf("result %s (%+v), want 40 requests, 4 failed, 1 slow", r, r)
	}
	if r.Errors["502 Bad Gateway"] != 4 {
		t.Errorf("errors %v", r.Errors)
	}
}

func TestTransportErrorsFail(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	l, err := Start(Options{URL: url, Workers: 1, MaxRequests: 3})
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if r := l.Stop(); r.Failed != 3 || r.Errors["connection refused"] != 3 {
		t.Errorf("result %s", r)
	}
}

func TestBoundedByTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	l, err := Start(Options{URL: srv.URL, MaxDuration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the load did not stop at its MaxDuration")
	}
	if r := l.Stop(); r.Requests == 0 || r.Failed != 0 {
		t.Errorf("result %s", r)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://example.com/", "http://10.0.0.1:80/", "https://127.0.0.1/", "http://[::1]x"} {
		if _, err := Start(Options{URL: u}); err == nil {
			t.Errorf("Start(%q) accepted it", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1/", "http://localhost:1/", "http://[::1]:1/"} {
		l, err := Start(Options{URL: u, MaxRequests: 1})
		if err != nil {
			t.Errorf("Start(%q): %v", u, err)
			continue
		}
		l.Stop()
	}
}
