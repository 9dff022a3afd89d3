package demosvc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// With -listen-early the port accepts before the service is ready, and a
// request sent then is answered once it is: the warm-up a proxy cannot
// retry around.
func TestListenEarlyHoldsRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	go Main([]string{"-addr", addr, "-dir", t.TempDir(), "-ready-delay", "500ms", "-listen-early"})

	var conn net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for conn == nil {
		if conn, err = net.Dial("tcp", addr); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the port never accepted: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	connected := time.Now().UnixNano()
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ready-at HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	readyAt, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		t.Fatalf("/ready-at: %q", b)
	}
	if readyAt <= connected {
		t.Errorf("ready at %d, not after the connection was accepted at %d: the port did not open early", readyAt, connected)
	}
}
