package steps

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-sh/rollout/executor"
)

// TestCommandDiesWithRollout kills -9 a process that runs a command the
// way a step does: the command dies with it (Pdeathsig) instead of running
// on into the recovery. The command also told the journal its process
// group before it ran.
func TestCommandDiesWithRollout(t *testing.T) {
	if pidFile := os.Getenv("ROLLOUT_PDEATHSIG_CHILD"); pidFile != "" {
		env := &executor.Env{ProcessFunc: func(pid int) {
			os.WriteFile(pidFile+".group", []byte(strconv.Itoa(pid)), 0o644)
		}}
		go runCommand(context.Background(), env, nil, command{argv: []string{"sh", "-c", "echo $$ > " + pidFile + "; exec sleep 60"}, timeout: time.Minute})
		time.Sleep(time.Hour)
		return
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	helper := exec.Command(os.Args[0], "-test.run=^TestCommandDiesWithRollout$")
	helper.Env = append(os.Environ(), "ROLLOUT_PDEATHSIG_CHILD="+pidFile)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	deadline := time.Now().Add(20 * time.Second)
	for pid == 0 {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			helper.Process.Kill()
			t.Fatal("the helper never started its command")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if b, err := os.ReadFile(pidFile + ".group"); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Errorf("the journal was told process group %q (%v), want %d", b, err, pid)
	}
	helper.Process.Signal(syscall.SIGKILL)
	helper.Wait()
	// A deadline guards against a hang; it is not a timing assertion.
	deadline = time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the command (pid %d) outlived the process that started it", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
