package tunnel_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/agent/identity"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/tunnel"
)

// lossyEnroller enrolls for real but loses the first lost answers, as when
// the agent's deadline passes or its connection drops after the manager
// committed. It records the public key of every request.
type lossyEnroller struct {
	next tunnel.Enroller

	mu      sync.Mutex
	lost    int
	keys    [][]byte
	dropped []enroll.Result
}

func (l *lossyEnroller) Enroll(ctx context.Context, r enroll.Request) (enroll.Result, error) {
	if csr, err := x509.ParseCertificateRequest(r.CSR); err == nil {
		l.mu.Lock()
		l.keys = append(l.keys, csr.RawSubjectPublicKeyInfo)
		l.mu.Unlock()
	}
	res, err := l.next.Enroll(ctx, r)
	if err != nil {
		return res, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost > 0 {
		l.lost--
		l.dropped = append(l.dropped, res)
		return enroll.Result{}, status.Error(codes.Unavailable, "the answer was lost")
	}
	return res, nil
}

// TestEnrollAnswerLost: a real agent with a single-use token whose first
// two enrollment answers are lost after the manager committed them retries
// with the same key, gets a certificate for the server the first attempt
// created and connects; its identity's key is that key and the pending key
// file is gone.
func TestEnrollAnswerLost(t *testing.T) {
	lossy := &lossyEnroller{lost: 2}
	e := newEnvWith(t, tunnel.Config{}, func(next tunnel.Enroller) tunnel.Enroller {
		lossy.next = next
		return lossy
	})
	tok := e.token(t, 1)
	dir := t.TempDir()
	connected, _ := e.startAgentAt(t, tok, dir, "127.0.8.1")
	var got string
	select {
	case got = <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not connect after its enrollment answers were lost")
	}
	id, err := ids.Parse(got)
	if err != nil {
		t.Fatal(err)
	}

	lossy.mu.Lock()
	keys, dropped := lossy.keys, lossy.dropped
	lossy.mu.Unlock()
	if len(keys) != 3 || len(dropped) != 2 {
		t.Fatalf("%d enrollment requests, %d answers lost; want 3 and 2", len(keys), len(dropped))
	}
	for i, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Errorf("attempt %d asked for another key than the first", i+2)
		}
	}
	for i, r := range dropped {
		if r.AgentID != id {
			t.Errorf("lost answer %d was for server %d, the agent connected as %s", i+1, r.AgentID, got)
		}
	}

	idn, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(idn.CertPEM)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.RawSubjectPublicKeyInfo, keys[0]) {
		t.Error("the saved certificate is not for the key of the enrollment")
	}
	if _, err := os.Stat(filepath.Join(dir, identity.PendingKeyFile)); !os.IsNotExist(err) {
		t.Errorf("pending key file after enrollment: %v, want it removed", err)
	}
	tk, err := e.db.JoinToken(t.Context(), tok[:6])
	if err != nil {
		t.Fatal(err)
	}
	if tk.Uses != 1 {
		t.Errorf("token uses = %d, want 1", tk.Uses)
	}
	list, n, err := e.db.Servers(t.Context(), fleet.ServerFilter{}, paging.Page{Num: 1, Size: 10})
	if err != nil || n != 1 || list[0].ID != id {
		t.Errorf("servers = %v (%d), %v; want only %d", list, n, err, id)
	}
}
