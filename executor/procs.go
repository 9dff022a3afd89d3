package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// JournalProc is a process group a step started (an exec command, rsync):
// the group's leader, with what tells it from a later process that got the
// same number.
type JournalProc struct {
	Step string `json:"step"`
	PGID int    `json:"pgid"`
	// Start is the leader's start time in clock ticks since boot
	// (/proc/PID/stat), Boot the boot it ran in.
	Start uint64 `json:"start,omitempty"`
	Boot  string `json:"boot,omitempty"`
}

func processOf(step string, pid int) JournalProc {
	p := JournalProc{Step: step, PGID: pid, Boot: bootID()}
	if st, ok := readStat(pid); ok {
		p.Start = st.start
	}
	return p
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

type procStat struct {
	state byte
	pgrp  int
	start uint64
}

// readStat reads the fields of /proc/PID/stat recovery needs.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, true
}

// groupMembers lists the live (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			out = append(out, pid)
		}
	}
	return out
}

// ours says whether process group p may still hold processes of the run
// that recorded it: same boot, and the leader's number not taken by a
// later process. A group outlives its leader; its number is not reused
// while a member lives.
func (p JournalProc) ours() bool {
	if p.PGID <= 1 {
		return false
	}
	if p.Boot != "" && p.Boot != bootID() {
		return false
	}
	if st, ok := readStat(p.PGID); ok && st.state != 'Z' && p.Start != 0 && st.start != p.Start {
		return false
	}
	return true
}

// killProcesses SIGKILLs the process groups a dead run's steps started and
// waits, at most within, until no member lives. It returns the groups
// still alive ("pgid 123 (step migrate): pids 123 124").
func killProcesses(procs []JournalProc, within time.Duration) []string {
	var live []JournalProc
	for _, p := range procs {
		if !p.ours() || len(groupMembers(p.PGID)) == 0 {
			continue
		}
		if err := syscall.Kill(-p.PGID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			// EPERM: not ours to kill; it is reported below if it lives.
			_ = err
		}
		live = append(live, p)
	}
	deadline := time.Now().Add(within)
	for {
		var alive []string
		for _, p := range live {
			if m := groupMembers(p.PGID); len(m) > 0 {
				alive = append(alive, fmt.Sprintf("pgid %d (step %s): pids %s", p.PGID, p.Step, strings.Trim(fmt.Sprint(m), "[]")))
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}
