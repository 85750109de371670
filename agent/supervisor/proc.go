package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// procStat reads the state letter and the start time (field 22, clock ticks
// after boot) of pid from /proc. The start time tells a process apart from
// a later one that got the same pid.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold anything,
	// so fields are counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 { // f[0] is field 3 (state), f[19] field 22 (starttime)
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return f[0][0], start, nil
}

// alive reports whether pid is still the process that started at start
// ticks and has not exited (a zombie has exited).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	state, st, err := procStat(pid)
	return err == nil && st == start && state != 'Z' && state != 'X'
}

// signalGroup sends sig to the process group led by pid. A group that is
// already gone is not an error.
func signalGroup(pid int, sig unix.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("refusing to signal group %d", pid)
	}
	if err := unix.Kill(-pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal group %d: %w", pid, err)
	}
	return nil
}

// logPath is where a node's stdout and stderr go.
func logPath(spec Spec) string { return filepath.Join(spec.LogDir, spec.Name+".log") }

// spawn starts the process of spec in its own session with stdin on
// /dev/null and stdout and stderr appended to its log file. The log file is
// handed to the child as its own fds, so the child keeps logging while the
// agent is down. It returns the started command and the process start time.
func spawn(spec Spec) (*exec.Cmd, uint64, error) {
	if err := os.MkdirAll(spec.LogDir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("log dir: %w", err)
	}
	logf, err := os.OpenFile(logPath(spec), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	if cmd.Err != nil {
		return nil, 0, cmd.Err
	}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	// The child cannot have been reaped yet (only we Wait for it), so its
	// /proc entry is there even if it already exited.
	_, start, err := procStat(cmd.Process.Pid)
	if err != nil {
		signalGroup(cmd.Process.Pid, unix.SIGKILL)
		cmd.Wait()
		return nil, 0, fmt.Errorf("read start time: %w", err)
	}
	return cmd, start, nil
}
