package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/invalid"
)

// configured deploys a node whose process reads conf/app.conf when it
// starts: "bad" makes it exit at once (a value that stops the server),
// anything else makes it write its config to <dataDir>/started and sleep.
// Its health check compares that file with the config; the node is
// removed when the test ends.
func configured(t *testing.T, m *Manager) (DeployRequest, HealthCheck) {
	t.Helper()
	argv := []string{"/bin/sh", "-c", `rm -f ../data/started; c=$(cat conf/app.conf); case "$c" in bad*) echo "refusing $c"; exit 3;; esac; ` +
		`echo "$c" > ../data/started.tmp && mv ../data/started.tmp ../data/started; exec sleep 600`}
	sha := cache(t, m, at.TarGz(t, declaring(t, argv...), at.File("README", "config test\n")))
	root := t.TempDir()
	r := DeployRequest{
		OperationID: "deploy", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: filepath.Join(root, "program"), DataDir: filepath.Join(root, "data"),
		ConfigFiles: []ConfigFile{{Path: "conf/app.conf", Content: []byte("good 1\n")}},
		Argv:        argv,
		StopGrace:   5 * time.Second, Start: true,
	}
	t.Cleanup(func() { m.Remove(context.Background(), RemoveRequest{OperationID: "cleanup", Name: r.Name}) })
	if _, err := m.Deploy(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	// Healthy: the process runs on the file the node has now.
	hc := HealthCheck{Command: []string{"cmp", "-s", filepath.Join(r.DataDir, "started"), filepath.Join(r.ProgramDir, "conf", "app.conf")},
		Timeout: 2 * time.Second}
	return r, hc
}

func (r DeployRequest) apply(op, content string, restart RestartPolicy, hc *HealthCheck) ApplyRequest {
	a := ApplyRequest{
		OperationID: op, Name: r.Name, ProgramDir: r.ProgramDir, DataDir: r.DataDir, Restart: restart,
		Health: hc, HealthStart: 20 * time.Second, HealthInterval: 200 * time.Millisecond, Restore: restart != RestartNever,
	}
	if content != "" {
		a.ConfigFiles = []ConfigFile{{Path: "conf/app.conf", Content: []byte(content)}}
	}
	return a
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestApplyConfig walks one node through the applies a flush makes: a
// change restarts it behind a health check, no change leaves it alone, a
// value that keeps it from starting is put back and the node restarted on
// its previous file, and a write-only apply leaves the restart to the
// next start.
func TestApplyConfig(t *testing.T) {
	m := newManager(t)
	r, hc := configured(t, m)
	conf := filepath.Join(r.ProgramDir, "conf", "app.conf")
	started := filepath.Join(r.DataDir, "started")
	ctx := t.Context()
	pid := func() int {
		st, err := m.status(r.Name)
		if err != nil {
			t.Fatal(err)
		}
		return st.PID
	}

	t.Run("changed file restarts behind the health check", func(t *testing.T) {
		before := pid()
		res, err := m.Apply(ctx, r.apply("a1", "good 2\n", RestartIfChanged, &hc))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Restarted || !res.Healthy || res.Restored || res.PIDBefore != before || res.PIDAfter == before || res.PIDAfter == 0 {
			t.Fatalf("result %+v (pid before %d)", res, before)
		}
		if len(res.Changed) != 1 || res.Changed[0] != conf || readString(t, conf) != "good 2\n" || readString(t, conf+".prev") != "good 1\n" {
			t.Fatalf("changed %v, file %q, prev %q", res.Changed, readString(t, conf), readString(t, conf+".prev"))
		}
		if readString(t, started) != "good 2\n" {
			t.Fatalf("the process started on %q", readString(t, started))
		}
	})

	t.Run("replay returns the recorded result", func(t *testing.T) {
		res, err := m.Apply(ctx, r.apply("a1", "something else\n", RestartIfChanged, &hc))
		if err != nil || !res.Replayed || !res.Restarted || readString(t, conf) != "good 2\n" {
			t.Fatalf("replay %+v %v, file %q", res, err, readString(t, conf))
		}
	})

	t.Run("unchanged file restarts nothing", func(t *testing.T) {
		before := pid()
		res, err := m.Apply(ctx, r.apply("a2", "good 2\n", RestartIfChanged, &hc))
		if err != nil || res.Restarted || len(res.Changed) != 0 || res.PIDAfter != before || res.HealthChecks != 0 {
			t.Fatalf("result %+v %v", res, err)
		}
		if readString(t, conf+".prev") != "good 1\n" {
			t.Fatalf("history shifted: prev %q", readString(t, conf+".prev"))
		}
	})

	t.Run("a bad value is restored and the node restarted on the previous file", func(t *testing.T) {
		res, err := m.Apply(ctx, r.apply("a3", "bad tickTime\n", RestartIfChanged, &hc))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Restarted || res.Healthy || !res.Restored || !res.RestoredHealthy || res.PIDAfter == 0 {
			t.Fatalf("result %+v", res)
		}
		if !strings.Contains(res.HealthDetail, "exited") || !strings.Contains(string(res.LogTail), "refusing bad tickTime") {
			t.Fatalf("detail %q, log %q", res.HealthDetail, res.LogTail)
		}
		if readString(t, conf) != "good 2\n" || readString(t, conf+".prev") != "good 1\n" || readString(t, started) != "good 2\n" {
			t.Fatalf("after restore: file %q prev %q started on %q", readString(t, conf), readString(t, conf+".prev"), readString(t, started))
		}
	})

	t.Run("write only leaves the restart to the next start", func(t *testing.T) {
		before := pid()
		res, err := m.Apply(ctx, r.apply("a4", "good 3\n", RestartNever, nil))
		if err != nil || res.Restarted || len(res.Changed) != 1 || pid() != before {
			t.Fatalf("result %+v %v", res, err)
		}
		d := r
		d.OperationID, d.ConfigFiles = "start-after-write", nil
		dres, err := m.Deploy(ctx, d)
		if err != nil || !dres.Restarted || dres.Status.PID == before {
			t.Fatalf("deploy after the write %+v %v", dres, err)
		}
	})

	t.Run("a rolling restart with no file", func(t *testing.T) {
		before := pid()
		res, err := m.Apply(ctx, r.apply("a5", "", RestartAlways, &hc))
		if err != nil || !res.Restarted || !res.Healthy || res.PIDAfter == before {
			t.Fatalf("result %+v %v", res, err)
		}
	})

	t.Run("a stopped node is written, not started", func(t *testing.T) {
		if _, _, err := m.Command(ctx, "stop", r.Name, CommandStop); err != nil {
			t.Fatal(err)
		}
		res, err := m.Apply(ctx, r.apply("a6", "good 4\n", RestartIfChanged, &hc))
		if err != nil || !res.Stopped || res.Restarted || res.Status.Running || readString(t, conf) != "good 4\n" {
			t.Fatalf("result %+v %v", res, err)
		}
		if _, _, err := m.Command(ctx, "start", r.Name, CommandStart); err != nil {
			t.Fatal(err)
		}
	})
}

func TestApplyRefusals(t *testing.T) {
	m := newManager(t)
	r, hc := configured(t, m)
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		req   func() ApplyRequest
		field string
		err   error
	}{
		{"bad operation id", func() ApplyRequest { a := r.apply("a b", "x\n", RestartIfChanged, &hc); return a }, "operation_id", nil},
		{"path outside the node", func() ApplyRequest {
			a := r.apply("p1", "x\n", RestartIfChanged, &hc)
			a.ConfigFiles[0].Path = "../escape.conf"
			return a
		}, "config_files", nil},
		{"absolute path elsewhere", func() ApplyRequest {
			a := r.apply("p2", "x\n", RestartIfChanged, &hc)
			a.ConfigFiles[0].Path = "/etc/passwd"
			return a
		}, "config_files", nil},
		{"restore without restart", func() ApplyRequest {
			a := r.apply("p3", "x\n", RestartNever, nil)
			a.Restore = true
			return a
		}, "restore_on_failure", nil},
		{"two checks", func() ApplyRequest {
			h := HealthCheck{TCPAddr: "127.0.0.1:1", Command: []string{"true"}}
			return r.apply("p4", "x\n", RestartIfChanged, &h)
		}, "check", nil},
		{"node not installed", func() ApplyRequest {
			a := r.apply("p5", "x\n", RestartIfChanged, &hc)
			a.Name = "other"
			return a
		}, "", ErrNotFound},
		{"recorded only, never begun", func() ApplyRequest {
			return ApplyRequest{OperationID: "never", Name: r.Name, RecordedOnly: true}
		}, "", ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Apply(ctx, tc.req())
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
			} else if e, ok := invalid.As(err); !ok || e.Field != tc.field {
				t.Fatalf("err %v, want a bad %s", err, tc.field)
			}
			if got := readString(t, filepath.Join(r.ProgramDir, "conf", "app.conf")); got != "good 1\n" {
				t.Fatalf("a refused apply wrote %q", got)
			}
		})
	}
}

// TestApplyBusyAndDetached: while an apply waits for its node's health,
// other changes of that node are refused, a repeat of the same operation
// waits for its result, and a caller that gives up does not stop it.
func TestApplyBusyAndDetached(t *testing.T) {
	m := newManager(t)
	r, _ := configured(t, m)
	gate := filepath.Join(t.TempDir(), "gate")
	slow := HealthCheck{Command: []string{"/bin/sh", "-c", "test -e " + gate}, Timeout: time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := m.Apply(ctx, r.apply("slow", "good 2\n", RestartIfChanged, &slow))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller got %v", err)
		}
	}()
	// The apply is under way once the node restarted on the new file.
	deadline := time.Now().Add(10 * time.Second)
	for readString(t, filepath.Join(r.DataDir, "started")) != "good 2\n" {
		if time.Now().After(deadline) {
			t.Fatal("the slow apply did not restart the node")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := m.Apply(t.Context(), r.apply("other", "good 3\n", RestartIfChanged, nil)); !errors.Is(err, ErrBusy) {
		t.Fatalf("second apply: %v", err)
	}
	if _, _, err := m.Command(t.Context(), "stop-now", r.Name, CommandStop); !errors.Is(err, ErrBusy) {
		t.Fatalf("stop during the apply: %v", err)
	}
	cancel()
	wg.Wait()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := m.Apply(t.Context(), ApplyRequest{OperationID: "slow", Name: r.Name, RecordedOnly: true})
	if err != nil || !res.Healthy || !res.Restarted || res.Restored {
		t.Fatalf("the apply its caller gave up on: %+v %v", res, err)
	}
	if _, _, err := m.Command(t.Context(), "stop-after", r.Name, CommandStop); err != nil {
		t.Fatalf("stop after the apply: %v", err)
	}
}

// TestApplyInterrupted: an agent that stopped during an apply (its record
// left behind) answers a recorded-only query with "interrupted", and a
// retry of the operation finishes it: restarted, since the restart was
// pending.
func TestApplyInterrupted(t *testing.T) {
	m := newManager(t)
	r, hc := configured(t, m)
	conf := filepath.Join(r.ProgramDir, "conf", "app.conf")
	// What an agent killed after writing the file leaves: the record, the
	// pending restart, the new file.
	if err := writeJSON(m.applyPath(r.Name), applyRecord{OperationID: "cut", Paths: []string{conf}}); err != nil {
		t.Fatal(err)
	}
	if err := m.markRestart(r.Name); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("good 2\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	res, err := m.Apply(t.Context(), ApplyRequest{OperationID: "cut", Name: r.Name, RecordedOnly: true})
	if err != nil || !res.Interrupted || len(res.Changed) != 1 {
		t.Fatalf("recorded only: %+v %v", res, err)
	}
	res, err = m.Apply(t.Context(), r.apply("cut", "good 2\n", RestartIfChanged, &hc))
	if err != nil || !res.Restarted || !res.Healthy || readString(t, filepath.Join(r.DataDir, "started")) != "good 2\n" {
		t.Fatalf("retry: %+v %v", res, err)
	}
	if _, err := os.Stat(m.applyPath(r.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("apply record left: %v", err)
	}
}
