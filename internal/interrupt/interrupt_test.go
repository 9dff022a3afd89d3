package interrupt

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestStages: the first signal calls first, the next calls second, later
// ones nothing, whichever of SIGINT, SIGTERM and SIGHUP they are.
func TestStages(t *testing.T) {
	sigs := make(chan os.Signal, 3)
	got := make(chan string, 3)
	stop := Stages(sigs, func(s os.Signal) { got <- "first " + Name(s) }, func(s os.Signal) { got <- "second " + Name(s) })
	defer stop()
	sigs <- syscall.SIGHUP
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGINT
	for _, want := range []string{"first SIGHUP", "second SIGTERM"} {
		if g := <-got; g != want {
			t.Errorf("got %q, want %q", g, want)
		}
	}
	select {
	case g := <-got:
		t.Errorf("a third signal was acted on: %q", g)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestSignalsIncludeHangup: a dropped ssh connection must stop a run as
// SIGTERM does, not kill it.
func TestSignalsIncludeHangup(t *testing.T) {
	want := map[os.Signal]bool{syscall.SIGINT: true, syscall.SIGTERM: true, syscall.SIGHUP: true}
	for _, s := range Signals {
		delete(want, s)
	}
	if len(want) > 0 {
		t.Errorf("Signals lacks %v", want)
	}
}
