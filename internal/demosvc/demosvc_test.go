package demosvc

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"healthy", nil, "/health", 200, "ok"},
		{"unhealthy", map[string]string{"UNHEALTHY": ""}, "/health", 503, "unhealthy\n"},
		{"version", map[string]string{"VERSION": " v1.2.3\n"}, "/version", 200, "v1.2.3"},
		{"no version", nil, "/version", 200, "unknown"},
		{"reloads", nil, "/reloads", 200, "2"},
		{"metrics", map[string]string{"VERSION": "v2\n"}, "/metrics", 200, `{"errors": {"rate": 0}, "version": "v2"}` + "\n"},
		{"error rate", map[string]string{"ERROR_RATE": "0.5\n"}, "/metrics", 200, `{"errors": {"rate": 0.5}, "version": ""}` + "\n"},
		{"not found", nil, "/nope", 404, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var reloads atomic.Int64
			reloads.Store(2)
			rec := httptest.NewRecorder()
			NewHandler(dir, &reloads).ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, rec.Code, rec.Body.String(), tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// TestHang: /health with DIR/HANG answers nothing until the client gives up.
func TestHang(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "HANG"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var reloads atomic.Int64
	srv := httptest.NewServer(NewHandler(dir, &reloads))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("got %s %q, want no answer", resp.Status, b)
	}
}

func TestRunFlags(t *testing.T) {
	if code := Main([]string{"-fail-start"}); code != 1 {
		t.Errorf("-fail-start exit code %d, want 1", code)
	}
	if code := Main([]string{"-no-such-flag"}); code != 2 {
		t.Errorf("bad flag exit code %d, want 2", code)
	}
}
