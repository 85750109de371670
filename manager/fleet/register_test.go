package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/sealed"
	"github.com/admq/admq-manager/manager/store"
)

// fakeBootstrap records calls and fails on demand.
type fakeBootstrap struct {
	fail  error
	calls []fleet.Server
	creds []fleet.SSHCredentials
}

func (f *fakeBootstrap) CheckCredentials(fleet.SSHCredentials) error { return nil }

func (f *fakeBootstrap) Bootstrap(_ context.Context, srv fleet.Server, c fleet.SSHCredentials, _ string, _ fleet.Progress) error {
	f.calls = append(f.calls, srv)
	f.creds = append(f.creds, c)
	return f.fail
}

func (f *fakeBootstrap) ForgetHostKey(context.Context, string, int) error { return nil }

type noAgents struct{}

func (noAgents) Online(ids.ID) bool { return false }
func (noAgents) Disconnect(ids.ID)  {}
func (noAgents) Ping(context.Context, ids.ID) (time.Duration, string, error) {
	return 0, "", errors.New("offline")
}

func newService(t *testing.T, b fleet.Bootstrapper) (*fleet.Service, *store.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(t.Context(), filepath.Join(dir, "admq.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	gen, _ := ids.NewGenerator(1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := fleet.NewService(db, fleet.NewPresenceTracker(db, time.Now, time.Second, log), noAgents{}, gen, time.Now)
	if err := svc.EnsureDefaultArea(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b != nil {
		key, err := sealed.LoadOrCreateKey(filepath.Join(dir, "secret.key"))
		if err != nil {
			t.Fatal(err)
		}
		box, err := sealed.New(key)
		if err != nil {
			t.Fatal(err)
		}
		svc.UseBootstrap(b, box, nil)
	}
	return svc, db
}

func TestRegisterServerBootstraps(t *testing.T) {
	ctx := t.Context()
	fb := &fakeBootstrap{}
	svc, db := newService(t, fb)
	const pw = "1qazXSW@-very-secret"

	srv, err := svc.RegisterServer(ctx, fleet.NewServer{ManagerIP: "198.18.0.20", Account: "root", SSH: fleet.SSHCredentials{Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	if len(fb.calls) != 1 || fb.calls[0].ID != srv.ID || fb.creds[0].Password != pw {
		t.Fatalf("bootstrapper called with %+v", fb.calls)
	}
	if srv.ProgramDir != fleet.DefaultProgramDir || srv.DataDir != fleet.DefaultDataDir || fb.calls[0].ProgramDir != fleet.DefaultProgramDir {
		t.Fatalf("dirs not defaulted: %q %q", srv.ProgramDir, srv.DataDir)
	}
	if srv.HasPassword {
		t.Fatal("password kept without keepPassword")
	}
	if sec, _ := db.ServerSecrets(ctx, srv.ID); sec.Password != nil {
		t.Fatal("password stored without keepPassword")
	}

	kept, err := svc.RegisterServer(ctx, fleet.NewServer{ManagerIP: "198.18.0.21", Account: "admq", SSH: fleet.SSHCredentials{Password: pw}, KeepCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	if !kept.HasPassword || kept.HasPrivateKey {
		t.Fatalf("kept server shows %+v", kept)
	}
	sec, err := db.ServerSecrets(ctx, kept.ID)
	if err != nil || len(sec.Password) == 0 || bytes.Contains(sec.Password, []byte(pw)) {
		t.Fatalf("stored password %x, %v: want it sealed", sec.Password, err)
	}
	creds, err := svc.ServerCredentials(ctx, kept.ID)
	if err != nil || creds.Password != pw {
		t.Fatalf("ServerCredentials = %v, %v", creds, err)
	}
	// A sealed value moved to another server does not open there.
	if err := db.SetServerSecrets(ctx, srv.ID, sec); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ServerCredentials(ctx, srv.ID); !errors.Is(err, sealed.ErrOpen) {
		t.Fatalf("swapped secret opened: %v", err)
	}
}

func TestRegisterServerFailedBootstrapLeavesNothing(t *testing.T) {
	ctx := t.Context()
	boom := errors.New("host on fire")
	fb := &fakeBootstrap{fail: boom}
	svc, _ := newService(t, fb)
	_, err := svc.RegisterServer(ctx, fleet.NewServer{ManagerIP: "198.18.0.22", Account: "root", SSH: fleet.SSHCredentials{Password: "x"}, KeepCredentials: true})
	if !errors.Is(err, boom) {
		t.Fatalf("RegisterServer = %v, want the bootstrap's error", err)
	}
	_, total, err := svc.Servers(ctx, fleet.ServerFilter{}, paging.Page{Num: 1, Size: 10})
	if err != nil || total != 0 {
		t.Fatalf("%d servers left after a failed bootstrap (%v)", total, err)
	}
	// The address is free again.
	fb.fail = nil
	if _, err := svc.RegisterServer(ctx, fleet.NewServer{ManagerIP: "198.18.0.22", Account: "root", SSH: fleet.SSHCredentials{Password: "x"}}); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestRegisterServerRefusesBeforeSSH(t *testing.T) {
	ctx := t.Context()
	fb := &fakeBootstrap{}
	svc, _ := newService(t, fb)
	if _, err := svc.RegisterServer(ctx, fleet.NewServer{ManagerIP: "198.18.0.23", Account: "root", SSH: fleet.SSHCredentials{Password: "x"}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		n    fleet.NewServer
		want error
	}{
		{"existing ip", fleet.NewServer{ManagerIP: "198.18.0.23", Account: "root"}, fleet.ErrServerExists},
		{"nested dirs", fleet.NewServer{ManagerIP: "198.18.0.24", Account: "root", ProgramDir: "/opt/admq", DataDir: "/opt/admq/data"}, fleet.ErrDirsNested},
		{"data dir holds the default program dir", fleet.NewServer{ManagerIP: "198.18.0.24", Account: "root", DataDir: "/opt"}, fleet.ErrDirsNested},
		{"unknown area", fleet.NewServer{ManagerIP: "198.18.0.24", Account: "root", Room: "mars"}, fleet.ErrAreaNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.n.SSH = fleet.SSHCredentials{Password: "x"}
			if _, err := svc.RegisterServer(ctx, c.n); !errors.Is(err, c.want) {
				t.Fatalf("RegisterServer = %v, want %v", err, c.want)
			}
		})
	}
	for _, n := range []fleet.NewServer{
		{ManagerIP: "198.18.0.25", SSH: fleet.SSHCredentials{Password: "x"}},                                         // no account
		{ManagerIP: "198.18.0.25", Account: "root", SSH: fleet.SSHCredentials{Passphrase: "x"}},                      // passphrase alone
		{ManagerIP: "198.18.0.25", Account: "root", SSH: fleet.SSHCredentials{Password: string(make([]byte, 2000))}}, // too long
	} {
		if _, err := svc.RegisterServer(ctx, n); err == nil {
			t.Errorf("RegisterServer(%+v) succeeded", n)
		} else if _, ok := invalid.As(err); !ok {
			t.Errorf("RegisterServer(%+v) = %v, want an invalid-field error", n, err)
		}
	}
	if len(fb.calls) != 1 {
		t.Fatalf("bootstrapper called %d times, want only for the first server", len(fb.calls))
	}

	// Without a bootstrapper, credentials are refused.
	plain, _ := newService(t, nil)
	if _, err := plain.RegisterServer(ctx, fleet.NewServer{ManagerIP: "198.18.0.26", Account: "root", SSH: fleet.SSHCredentials{Password: "x"}}); err == nil {
		t.Fatal("password accepted without SSH bootstrap")
	} else if e, ok := invalid.As(err); !ok || e.Field != "password" {
		t.Fatalf("RegisterServer = %v, want an invalid password field", err)
	}
}

// steppingBootstrap goes through the bootstrap steps, telling p, and
// fails at failAt (with err) if set.
type steppingBootstrap struct {
	failAt string
	err    error
}

func (b *steppingBootstrap) CheckCredentials(c fleet.SSHCredentials) error {
	if c.PrivateKey == "garbage" {
		return invalid.Field("privateKey", "not a usable PEM private key")
	}
	return nil
}

func (b *steppingBootstrap) Bootstrap(_ context.Context, _ fleet.Server, _ fleet.SSHCredentials, _ string, p fleet.Progress) error {
	for _, s := range fleet.BootstrapSteps {
		p.Running(s, "")
		if s == b.failAt {
			p.Failed(s, "it broke: "+b.err.Error())
			return b.err
		}
		p.Done(s, s+" ok")
	}
	return nil
}

func (b *steppingBootstrap) ForgetHostKey(context.Context, string, int) error { return nil }

// TestStartRegisterServer adds servers with async: the job the deploy
// engine records follows the steps to the end, a failed one removes the
// server and keeps the error's code, and what is refused before SSH
// leaves no job.
func TestStartRegisterServer(t *testing.T) {
	ctx := t.Context()
	sb := &steppingBootstrap{}
	svc, db := newService(t, sb)
	gen, _ := ids.NewGenerator(2)
	eng := deploy.New(deploy.Deps{Store: db, IDs: gen, ErrorCode: func(err error) (int, map[string]any) {
		return 1253, map[string]any{"why": err.Error()}
	}})
	key, _ := sealed.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	box, _ := sealed.New(key)
	svc.UseBootstrap(sb, box, eng)
	wait := func(id ids.ID) (deploy.Job, []deploy.Step) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			changed := eng.Changed()
			j, steps, err := eng.Job(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if j.Done() {
				return j, steps
			}
			select {
			case <-changed:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("job %s not done: %+v", id, j)
			}
		}
	}
	n := fleet.NewServer{ManagerIP: "198.18.0.40", Account: "root", SSH: fleet.SSHCredentials{Password: "pw-1"}, KeepCredentials: true, RequestedBy: "op"}
	srv, jobID, err := svc.StartRegisterServer(ctx, n)
	if err != nil || srv.AgentStatus != fleet.StatusPending || jobID.IsZero() {
		t.Fatalf("StartRegisterServer = %+v, %s, %v", srv, jobID, err)
	}
	j, steps := wait(jobID)
	if j.State != deploy.JobSucceeded || j.Type != deploy.TypeBootstrap || j.ServerID != srv.ID || j.CreatedBy != "op" || len(steps) != 5 {
		t.Fatalf("job %+v steps %+v", j, steps)
	}
	for i, s := range steps {
		if s.Name != fleet.BootstrapSteps[i] || s.State != deploy.StepSucceeded || s.Detail != s.Name+" ok" || s.StartedAt.IsZero() || s.FinishedAt.IsZero() {
			t.Errorf("step %d: %+v", i, s)
		}
	}
	if got, err := svc.Server(ctx, srv.ID); err != nil || !got.HasPassword {
		t.Fatalf("bootstrapped server %+v, %v: want it kept with its password", got, err)
	}

	sb.failAt, sb.err = fleet.BootstrapUpload, errors.New("disk full")
	n.ManagerIP = "198.18.0.41"
	srv, jobID, err = svc.StartRegisterServer(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	j, steps = wait(jobID)
	if j.State != deploy.JobFailed || j.Reason != "disk full" || j.Code != 1253 || j.ErrorData["why"] != "disk full" {
		t.Fatalf("failed job %+v", j)
	}
	wantStates := []string{deploy.StepSucceeded, deploy.StepSucceeded, deploy.StepFailed, deploy.StepCancelled, deploy.StepCancelled}
	for i, s := range steps {
		if s.State != wantStates[i] {
			t.Errorf("step %s %s (%q), want %s", s.Name, s.State, s.Detail, wantStates[i])
		}
	}
	if steps[2].Detail != "it broke: disk full" || steps[3].Detail != "not run: upload failed" {
		t.Errorf("failed step %q, next %q", steps[2].Detail, steps[3].Detail)
	}
	if _, err := svc.Server(ctx, srv.ID); !errors.Is(err, fleet.ErrServerNotFound) {
		t.Fatalf("the failed bootstrap's server: %v, want it removed", err)
	}

	// Refused before SSH: no server, no job.
	_, before, _ := eng.Jobs(ctx, 0, paging.Page{Num: 1, Size: 1})
	for name, bad := range map[string]fleet.NewServer{
		"registered ip":  {ManagerIP: "198.18.0.40", Account: "root", SSH: fleet.SSHCredentials{Password: "x"}},
		"no credentials": {ManagerIP: "198.18.0.42"},
		"unusable key":   {ManagerIP: "198.18.0.43", Account: "root", SSH: fleet.SSHCredentials{PrivateKey: "garbage"}},
		"unknown area":   {ManagerIP: "198.18.0.44", Account: "root", Room: "mars", SSH: fleet.SSHCredentials{Password: "x"}},
	} {
		if _, _, err := svc.StartRegisterServer(ctx, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, after, _ := eng.Jobs(ctx, 0, paging.Page{Num: 1, Size: 1}); after != before {
		t.Errorf("refused requests made %d jobs", after-before)
	}
	if _, total, _ := svc.Servers(ctx, fleet.ServerFilter{}, paging.Page{Num: 1, Size: 10}); total != 1 {
		t.Errorf("%d servers, want the one bootstrapped", total)
	}
}
