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

func (f *fakeBootstrap) Bootstrap(_ context.Context, srv fleet.Server, c fleet.SSHCredentials, _ string) error {
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
		svc.UseBootstrap(b, box)
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
