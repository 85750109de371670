package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newSup returns a Supervisor on stateDir that removes (and so stops) all
// its nodes and closes when the test ends.
func newSup(t testing.TB, stateDir string, opts ...Option) *Supervisor {
	t.Helper()
	s, err := New(stateDir, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, st := range s.List() {
			err := s.Remove(context.Background(), st.Name)
			if errors.Is(err, ErrClosed) && st.PID != 0 && !gone(st.PID) {
				// Closed (by Run ending) before the test could stop it.
				signalGroup(st.PID, unix.SIGKILL)
				waitFor(t, "killed process to go", func() bool { return gone(st.PID) })
			} else if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("cleanup: %v", err)
			}
		}
		s.Close()
	})
	return s
}

// run runs s.Run until the returned stop func is called or the test ends.
func run(t testing.TB, s *Supervisor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func testSpec(name, logDir string, argv ...string) Spec {
	return Spec{
		Name:        name,
		Argv:        argv,
		LogDir:      logDir,
		StopGrace:   2 * time.Second,
		BackoffBase: 10 * time.Millisecond,
		BackoffMax:  40 * time.Millisecond,
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustStatus(t testing.TB, s *Supervisor, name string) State {
	t.Helper()
	st, err := s.Status(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// gone reports whether pid has exited (missing, or a zombie nobody reaped).
func gone(pid int) bool {
	state, _, err := procStat(pid)
	return err != nil || state == 'Z' || state == 'X'
}

func TestStartStatusLogStop(t *testing.T) {
	dir := t.TempDir()
	s := newSup(t, filepath.Join(dir, "state"))
	ctx := t.Context()
	spec := testSpec("zk-1", filepath.Join(dir, "logs"), "/bin/sh", "-c", "echo hello; echo oops >&2; exec sleep 1000")
	if err := s.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, s, "zk-1")
	if !st.Running || st.PID <= 0 || st.Desired != Running || st.Adopted || st.StartedAt.IsZero() {
		t.Fatalf("Status = %+v", st)
	}
	if gone(st.PID) {
		t.Fatalf("pid %d is not alive", st.PID)
	}
	if sid, err := unix.Getsid(st.PID); err != nil || sid != st.PID {
		t.Errorf("getsid(%d) = %d, %v; want its own session", st.PID, sid, err)
	}
	if pgid, err := unix.Getpgid(st.PID); err != nil || pgid != st.PID {
		t.Errorf("getpgid(%d) = %d, %v; want its own group", st.PID, pgid, err)
	}
	if got := s.Processes(); len(got) != 1 || got[0] != (Proc{Name: "zk-1", PID: int32(st.PID)}) {
		t.Errorf("Processes = %+v", got)
	}

	logFile := filepath.Join(dir, "logs", "zk-1.log")
	waitFor(t, "output in the log", func() bool {
		b, _ := os.ReadFile(logFile)
		return string(b) == "hello\noops\n"
	})
	for _, tc := range []struct {
		max  int
		want string
	}{{4, "ops\n"}, {6, "\noops\n"}, {100, "hello\noops\n"}, {1 << 30, "hello\noops\n"}, {0, ""}} {
		if got, err := s.LogTail("zk-1", tc.max); err != nil || string(got) != tc.want {
			t.Errorf("LogTail(%d) = %q, %v; want %q", tc.max, got, err, tc.want)
		}
	}
	if _, err := s.LogTail("nope", 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("LogTail of unknown node: %v", err)
	}

	// Same spec again: nothing happens. Another spec: refused.
	if err := s.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if again := mustStatus(t, s, "zk-1"); again.PID != st.PID {
		t.Fatalf("second Start changed pid %d → %d", st.PID, again.PID)
	}
	other := spec
	other.Argv = []string{"/bin/sleep", "1000"}
	if err := s.Start(ctx, other); !errors.Is(err, ErrSpecChanged) {
		t.Fatalf("Start with another spec = %v; want ErrSpecChanged", err)
	}

	if err := s.Stop(ctx, "zk-1"); err != nil {
		t.Fatal(err)
	}
	stopped := mustStatus(t, s, "zk-1")
	if stopped.Running || stopped.Desired != Stopped || stopped.PID != 0 || stopped.LastExit != "signal: terminated" {
		t.Fatalf("after Stop: %+v", stopped)
	}
	if !gone(st.PID) {
		t.Fatalf("pid %d still alive after Stop", st.PID)
	}
	var rec record
	b, err := os.ReadFile(filepath.Join(dir, "state", "supervisor", "zk-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Desired != Stopped || rec.PID != 0 {
		t.Fatalf("state file %s: %v", b, err)
	}
	// Once stopped, a new spec is taken.
	if err := s.Start(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx, "zk-1"); err != nil {
		t.Fatal(err)
	}
	if st := mustStatus(t, s, "zk-1"); !st.Running || st.Restarts != 0 {
		t.Fatalf("after Restart: %+v", st)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	s := newSup(t, dir)
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"bad name", testSpec("a/b", dir, "/bin/true"), "name"},
		{"empty name", testSpec("", dir, "/bin/true"), "name"},
		{"dot dot", testSpec("..", dir, "/bin/true"), "name"},
		{"long name", testSpec(strings.Repeat("a", 65), dir, "/bin/true"), "name"},
		{"no argv", testSpec("n", dir), "empty argv"},
		{"no log dir", testSpec("n", "", "/bin/true"), "no log dir"},
		{"bad policy", func() Spec { s := testSpec("n", dir, "/bin/true"); s.Restart = "sometimes"; return s }(), "restart policy"},
		{"missing binary", testSpec("n", dir, "/nonexistent/bin"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Start(t.Context(), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v; want %q", err, tc.want)
			}
		})
	}
	if st := mustStatus(t, s, "n"); st.Running || st.Desired != Stopped || !strings.Contains(st.LastExit, "no such file") {
		t.Fatalf("after failed start: %+v", st)
	}
	for _, op := range []func(context.Context, string) error{s.Stop, s.Restart, s.Remove} {
		if err := op(t.Context(), "unknown"); !errors.Is(err, ErrNotFound) {
			t.Errorf("op on unknown node = %v", err)
		}
	}
}

func TestCrashRestart(t *testing.T) {
	for _, tc := range []struct {
		name        string
		policy      Policy
		script      string
		wantRestart bool
		wantExit    string
	}{
		{"on-failure restarts a failure", OnFailure, "exit 3", true, "exit status 3"},
		{"default policy is on-failure", "", "kill -KILL $$", true, "signal: killed"},
		{"on-failure leaves a clean exit", OnFailure, "exit 0", false, "exit status 0"},
		{"always restarts a clean exit", Always, "exit 0", true, "exit status 0"},
		{"never leaves a failure", Never, "exit 3", false, "exit status 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newSup(t, dir)
			spec := testSpec("n", dir, "/bin/sh", "-c", tc.script)
			spec.Restart = tc.policy
			if err := s.Start(t.Context(), spec); err != nil {
				t.Fatal(err)
			}
			if tc.wantRestart {
				waitFor(t, "three restarts", func() bool { return mustStatus(t, s, "n").Restarts >= 3 })
			} else {
				waitFor(t, "exit", func() bool { return !mustStatus(t, s, "n").Running })
				time.Sleep(150 * time.Millisecond) // several backoffs' worth
			}
			st := mustStatus(t, s, "n")
			if st.LastExit != tc.wantExit || st.Desired != Running {
				t.Fatalf("Status = %+v; want LastExit %q", st, tc.wantExit)
			}
			if !tc.wantRestart && (st.Restarts != 0 || st.Running) {
				t.Fatalf("restarted against policy: %+v", st)
			}
			if err := s.Stop(t.Context(), "n"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond) // longer than BackoffMax: no restart after Stop
			if st := mustStatus(t, s, "n"); st.Running {
				t.Fatalf("running after Stop: %+v", st)
			}
		})
	}
}

// TestBackoffResets checks that a process that stayed up for 2×BackoffMax
// (by the injected clock) starts its backoff over: with a 10ms base and a
// 1h cap, fifteen crash restarts without resets would take minutes.
func TestBackoffResets(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { // every reading is 3h after the last
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(3 * time.Hour)
		return now
	}
	s := newSup(t, dir, WithClock(clock))
	spec := testSpec("n", dir, "/bin/sh", "-c", "exit 1")
	spec.BackoffBase, spec.BackoffMax = 10*time.Millisecond, time.Hour
	if err := s.Start(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "fifteen quick restarts", func() bool { return mustStatus(t, s, "n").Restarts >= 15 })
}

func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		grace    time.Duration
		minTime  time.Duration
		maxTime  time.Duration
		wantExit string
	}{
		{"traps TERM and exits", `trap 'exit 0' TERM; echo $$; sleep 1000 & wait`, 5 * time.Second, 0, 2 * time.Second, "exit status 0"},
		{"ignores TERM", `trap '' TERM; sleep 1000 & echo $!; wait`, 300 * time.Millisecond, 300 * time.Millisecond, 3 * time.Second, "signal: killed"},
		{"leaves a child that ignores TERM", `(trap '' TERM; exec sleep 1000) & echo $!; trap 'exit 0' TERM; wait`, 5 * time.Second, 0, 2 * time.Second, "exit status 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newSup(t, dir)
			spec := testSpec("n", dir, "/bin/sh", "-c", tc.script)
			spec.StopGrace = tc.grace
			if err := s.Start(t.Context(), spec); err != nil {
				t.Fatal(err)
			}
			pid := mustStatus(t, s, "n").PID
			// The script prints the pid of one of its group's members.
			var member int
			waitFor(t, "member pid in the log", func() bool {
				b, _ := s.LogTail("n", 100)
				member, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				return bytes.HasSuffix(b, []byte("\n")) && member > 0
			})
			time.Sleep(50 * time.Millisecond) // let the shell reach wait
			start := time.Now()
			if err := s.Stop(t.Context(), "n"); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < tc.minTime || d > tc.maxTime {
				t.Errorf("Stop took %v; want %v..%v", d, tc.minTime, tc.maxTime)
			}
			if !gone(pid) {
				t.Errorf("process %d alive after Stop", pid)
			}
			waitFor(t, "group member gone", func() bool { return gone(member) })
			if st := mustStatus(t, s, "n"); st.LastExit != tc.wantExit || st.Running {
				t.Errorf("Status = %+v; want LastExit %q", st, tc.wantExit)
			}
		})
	}
}

func TestAdopt(t *testing.T) {
	dir := t.TempDir()
	stateDir, logDir := filepath.Join(dir, "state"), filepath.Join(dir, "logs")

	// Agent run A starts a node and dies without stopping it.
	a := newSup(t, stateDir)
	stopA := run(t, a)
	if err := a.Start(t.Context(), testSpec("kept", logDir, "/bin/sh", "-c", "echo one; exec sleep 1000")); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context(), testSpec("off", logDir, "/bin/sleep", "1000")); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(t.Context(), "off"); err != nil {
		t.Fatal(err)
	}
	orig := mustStatus(t, a, "kept")
	stopA()
	if err := a.Start(t.Context(), testSpec("x", logDir, "/bin/true")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Run ended = %v; want ErrClosed", err)
	}
	if gone(orig.PID) {
		t.Fatal("the node died with the agent")
	}

	// Stale records: a pid that now belongs to another process (this test),
	// and a pid whose process is gone.
	_, self, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	writeRecord(t, stateDir, record{Spec: testSpec("reused", logDir, "/bin/sleep", "1000"), Desired: Running, PID: os.Getpid(), StartTicks: self + 1})
	writeRecord(t, stateDir, record{Spec: testSpec("dead", logDir, "/bin/sleep", "1000"), Desired: Running, PID: 1 << 22, StartTicks: 1})

	// Agent run B adopts.
	b := newSup(t, stateDir, WithPollInterval(20*time.Millisecond))
	if err := b.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	run(t, b)
	st := mustStatus(t, b, "kept")
	if !st.Running || !st.Adopted || st.PID != orig.PID || !st.StartedAt.Equal(orig.StartedAt) {
		t.Fatalf("adopted Status = %+v; want pid %d", st, orig.PID)
	}
	if got, _ := b.LogTail("kept", 100); string(got) != "one\n" {
		t.Errorf("LogTail of adopted node = %q", got)
	}
	for _, name := range []string{"reused", "dead"} {
		st := mustStatus(t, b, name)
		if !st.Running || st.Adopted || st.PID == os.Getpid() || st.PID == 1<<22 {
			t.Errorf("%s: Status = %+v; want started afresh", name, st)
		}
	}
	if st := mustStatus(t, b, "off"); st.Running || st.Desired != Stopped {
		t.Errorf("off: Status = %+v", st)
	}

	// The adopted process dies on its own: B notices by polling and
	// restarts it as its own child.
	if err := unix.Kill(orig.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restart of the adopted node", func() bool {
		st := mustStatus(t, b, "kept")
		return st.Running && st.PID != orig.PID
	})
	if st := mustStatus(t, b, "kept"); st.Adopted || st.Restarts != 1 || st.LastExit != exitUnknown {
		t.Fatalf("after restart: %+v", st)
	}

	// B hands over to C, which stops the adopted node.
	newPID := mustStatus(t, b, "kept").PID
	b.Close()
	c := newSup(t, stateDir)
	if err := c.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := mustStatus(t, c, "kept"); !st.Adopted || st.PID != newPID {
		t.Fatalf("C: Status = %+v", st)
	}
	if err := c.Stop(t.Context(), "kept"); err != nil {
		t.Fatal(err)
	}
	if !gone(newPID) {
		t.Fatal("adopted process alive after Stop")
	}
	if st := mustStatus(t, c, "kept"); st.Running || st.Desired != Stopped {
		t.Fatalf("C after Stop: %+v", st)
	}
}

func writeRecord(t testing.TB, stateDir string, rec record) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "supervisor", rec.Spec.Name+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAdoptBadStateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "supervisor"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "supervisor", "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeRecord(t, dir, record{Spec: testSpec("good", dir, "/bin/sleep", "1000"), Desired: Stopped})
	s := newSup(t, dir)
	if err := s.Adopt(t.Context()); err == nil || !strings.Contains(err.Error(), "adopt bad") {
		t.Fatalf("Adopt = %v", err)
	}
	if _, err := s.Status("good"); err != nil {
		t.Fatalf("good node not loaded: %v", err)
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n.log")
	// The writer opens the log as a node does: O_APPEND.
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for round := 1; round <= 4; round++ {
		if _, err := w.Write(bytes.Repeat([]byte{byte('0' + round)}, 5000)); err != nil {
			t.Fatal(err)
		}
		if err := rotate(path, 4096, 2); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("live log after rotation: %v, %v", fi, err)
	}
	for suffix, want := range map[string]byte{".1": '4', ".2": '3'} {
		b, err := os.ReadFile(path + suffix)
		if err != nil || len(b) != 5000 || b[0] != want {
			t.Errorf("%s: %d bytes starting %q, %v", suffix, len(b), b[:min(len(b), 1)], err)
		}
	}
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".3 kept beyond MaxLogFiles: %v", err)
	}
	// O_APPEND: the next write lands at the start, not after a hole.
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 1 {
		t.Fatalf("size after write = %d; want 1", fi.Size())
	}
	if err := rotate(path, 4096, 2); err != nil { // under the limit: untouched
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + ".1"); len(b) != 5000 {
		t.Fatal("rotated under the limit")
	}
}

// TestRotationByRun has Run rotate a live node's log.
func TestRotationByRun(t *testing.T) {
	dir := t.TempDir()
	s := newSup(t, dir, WithMaxLogSize(4096), WithMaxLogFiles(2), WithRotateInterval(20*time.Millisecond))
	run(t, s)
	line := strings.Repeat("x", 99)
	script := fmt.Sprintf("i=0; while [ $i -lt 60 ]; do echo %s; i=$((i+1)); done; echo done; exec sleep 1000", line)
	if err := s.Start(t.Context(), testSpec("n", dir, "/bin/sh", "-c", script)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "n.log")
	waitFor(t, "rotation", func() bool {
		fi, err := os.Stat(path)
		_, err1 := os.Stat(path + ".1")
		return err == nil && err1 == nil && fi.Size() < 4096
	})
	// The node keeps logging into the live file after the rotation.
	if err := unix.Kill(mustStatus(t, s, "n").PID, 0); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentOps(t *testing.T) {
	dir := t.TempDir()
	s := newSup(t, dir, WithRotateInterval(10*time.Millisecond), WithPollInterval(10*time.Millisecond))
	run(t, s)
	names := []string{"a", "b", "c"}
	var (
		mu   sync.Mutex
		pids = map[int]bool{}
		wg   sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := range 12 {
				name := names[(g+i)%len(names)]
				var err error
				switch (g * i) % 4 {
				case 0, 1:
					err = s.Start(t.Context(), testSpec(name, dir, "/bin/sleep", "1000"))
				case 2:
					err = s.Stop(t.Context(), name)
				case 3:
					err = s.Restart(t.Context(), name)
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
				for _, p := range s.Processes() {
					mu.Lock()
					pids[int(p.PID)] = true
					mu.Unlock()
				}
				s.List()
			}
		})
	}
	wg.Wait()
	for _, name := range names {
		if err := s.Remove(t.Context(), name); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if got := s.Processes(); len(got) != 0 {
		t.Fatalf("Processes after Remove = %v", got)
	}
	for pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d alive after Remove", pid)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "supervisor")); len(ents) != 0 {
		t.Errorf("state files left: %d", len(ents))
	}
}
