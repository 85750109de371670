package store_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/admq/admq-manager/manager/bootstrap"
	"github.com/admq/admq-manager/manager/fleet"
)

func TestHostKeys(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	const addr = "198.18.0.2:22"
	if _, err := db.HostKey(ctx, addr); !errors.Is(err, bootstrap.ErrHostKeyNotFound) {
		t.Fatalf("HostKey of unknown address: %v, want ErrHostKeyNotFound", err)
	}
	first := bootstrap.HostKey{Address: addr, Type: "ssh-ed25519", Key: []byte{1, 2, 3}, Fingerprint: "SHA256:first", CreatedAt: base}
	stored, added, err := db.AddHostKey(ctx, first)
	if err != nil || !added || !bytes.Equal(stored.Key, first.Key) || !stored.CreatedAt.Equal(base) {
		t.Fatalf("first AddHostKey = %+v, %v, %v", stored, added, err)
	}
	// Trust on first use: a later, different key does not replace it.
	second := bootstrap.HostKey{Address: addr, Type: "ssh-ed25519", Key: []byte{9, 9}, Fingerprint: "SHA256:second", CreatedAt: base.Add(1000)}
	stored, added, err = db.AddHostKey(ctx, second)
	if err != nil || added || stored.Fingerprint != "SHA256:first" {
		t.Fatalf("second AddHostKey = %+v, %v, %v; want the first key kept", stored, added, err)
	}
	got, err := db.HostKey(ctx, addr)
	if err != nil || got.Type != "ssh-ed25519" || !bytes.Equal(got.Key, first.Key) || got.Fingerprint != "SHA256:first" {
		t.Fatalf("HostKey = %+v, %v", got, err)
	}
	// Other ports of the same address are other endpoints.
	if _, added, err := db.AddHostKey(ctx, bootstrap.HostKey{Address: "198.18.0.2:2222", Type: "ssh-rsa", Key: []byte{7}, Fingerprint: "SHA256:x"}); err != nil || !added {
		t.Fatalf("AddHostKey on another port: %v, %v", added, err)
	}
	if err := db.DeleteHostKey(ctx, addr); err != nil {
		t.Fatalf("DeleteHostKey: %v", err)
	}
	if err := db.DeleteHostKey(ctx, addr); !errors.Is(err, bootstrap.ErrHostKeyNotFound) {
		t.Fatalf("second DeleteHostKey: %v, want ErrHostKeyNotFound", err)
	}
	if _, added, err := db.AddHostKey(ctx, second); err != nil || !added {
		t.Fatalf("AddHostKey after forgetting: %v, %v", added, err)
	}
}

func TestHostKeysConcurrentFirstUse(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]bootstrap.HostKey, 8)
	addedN := make([]bool, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := bootstrap.HostKey{Address: "198.18.0.3:22", Type: "ssh-ed25519", Key: []byte{byte(i)}, Fingerprint: "fp", CreatedAt: base}
			var err error
			results[i], addedN[i], err = db.AddHostKey(ctx, k)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := 0
	for i := range results {
		if addedN[i] {
			n++
		}
		if !bytes.Equal(results[i].Key, results[0].Key) {
			t.Fatalf("callers disagree on the recorded key: %x vs %x", results[i].Key, results[0].Key)
		}
	}
	if n != 1 {
		t.Fatalf("%d callers recorded a key, want 1", n)
	}
}

func TestServerSecrets(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	s := mustServer(t, db, 0, "198.18.0.4", "")
	if s.HasPassword || s.HasPrivateKey {
		t.Fatalf("new server has secrets: %+v", s)
	}
	sec := fleet.SealedSecrets{Password: []byte("sealed-pw"), PrivateKey: []byte("sealed-key")}
	if err := db.SetServerSecrets(ctx, s.ID, sec); err != nil {
		t.Fatal(err)
	}
	got, err := db.ServerSecrets(ctx, s.ID)
	if err != nil || string(got.Password) != "sealed-pw" || string(got.PrivateKey) != "sealed-key" || got.Passphrase != nil {
		t.Fatalf("ServerSecrets = %+v, %v", got, err)
	}
	srv, err := db.Server(ctx, s.ID)
	if err != nil || !srv.HasPassword || !srv.HasPrivateKey {
		t.Fatalf("Server after SetServerSecrets: %+v, %v", srv, err)
	}
	if err := db.SetServerSecrets(ctx, s.ID, fleet.SealedSecrets{}); err != nil {
		t.Fatal(err)
	}
	if srv, _ := db.Server(ctx, s.ID); srv.HasPassword || srv.HasPrivateKey {
		t.Fatalf("secrets still shown after clearing: %+v", srv)
	}
	if err := db.SetServerSecrets(ctx, 424242, sec); !errors.Is(err, fleet.ErrServerNotFound) {
		t.Fatalf("SetServerSecrets of unknown server: %v", err)
	}
	if _, err := db.ServerSecrets(ctx, 424242); !errors.Is(err, fleet.ErrServerNotFound) {
		t.Fatalf("ServerSecrets of unknown server: %v", err)
	}
}
