// Package interrupt is rollout's one handling of the signals that ask it
// to stop. Every command that changes services uses it, so that Ctrl-C, a
// kill and a dropped ssh connection mean the same thing everywhere, and a
// closed stdout never kills a run.
package interrupt

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals ask rollout to stop: Ctrl-C (SIGINT), a kill (SIGTERM) and a
// hang-up (SIGHUP: the terminal or the ssh connection went away). They are
// treated alike, because the operator who sent any of them wants the same
// thing: nothing new started, nothing left half-done.
var Signals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// Notify delivers Signals on the returned channel instead of letting them
// kill the process, and turns a write to a closed pipe (`rollout run --json
// | head -1`) into an EPIPE error instead of a death by SIGPIPE: Go kills a
// program that writes to a broken stdout or stderr unless SIGPIPE is
// notified. It is notified rather than ignored because an ignored signal
// stays ignored in the processes rollout starts (a migration, rsync), and
// those must see the default. stop undoes Notify.
func Notify() (sigs <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, Signals...)
	// Nobody reads pipe: SIGPIPE is only noticed so that the write fails
	// instead. Notify never blocks on a full channel.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	return ch, func() {
		signal.Stop(ch)
		signal.Stop(pipe)
	}
}

// Stages calls first on the first signal from sigs and second on the next
// one, then stops listening: rollout's two-step contract (start nothing
// new, then roll back now). stop ends the watch.
func Stages(sigs <-chan os.Signal, first, second func(os.Signal)) (stop func()) {
	done := make(chan struct{})
	go func() {
		for _, f := range []func(os.Signal){first, second} {
			select {
			case s := <-sigs:
				f(s)
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// Name is a signal's conventional name ("SIGHUP"), for messages.
func Name(s os.Signal) string {
	if n, ok := s.(syscall.Signal); ok {
		switch n {
		case syscall.SIGINT:
			return "SIGINT"
		case syscall.SIGTERM:
			return "SIGTERM"
		case syscall.SIGHUP:
			return "SIGHUP"
		}
	}
	return s.String()
}
