package dirlock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestHelperHold is not a test: run by TestHeldByAnotherProcess in a child
// process, it takes the lock named by ADMQ_DIRLOCK_PATH, says so, and
// holds it until its stdin closes.
func TestHelperHold(t *testing.T) {
	path := os.Getenv("ADMQ_DIRLOCK_PATH")
	if path == "" {
		t.Skip("helper process")
	}
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
	l.Release()
}

func TestHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	child := exec.Command(os.Args[0], "-test.run=^TestHelperHold$")
	child.Env = append(os.Environ(), "ADMQ_DIRLOCK_PATH="+path)
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); child.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	_, err := Acquire(path)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != child.Process.Pid || held.Path != path {
		t.Fatalf("Acquire while held by pid %d: %v", child.Process.Pid, err)
	}

	// The holder dies without releasing (SIGKILL): the kernel drops the
	// lock, and the next Acquire gets it; the pid in the file is ours.
	child.Process.Kill()
	child.Wait()
	l, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after the holder died: %v", err)
	}
	if _, err := Acquire(path); err == nil {
		t.Fatal("a second Acquire in the same process succeeded")
	} else if !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Fatalf("second Acquire: %v, want our pid %d", err, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}
