package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Load(dir); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("empty dir: got %v, want ErrNotEnrolled", err)
	}
	want := Identity{AgentID: "42", KeyPEM: []byte("key"), CertPEM: []byte("cert"), CAPEM: []byte("ca")}
	if err := Save(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.AgentID != want.AgentID || string(got.KeyPEM) != "key" || string(got.CertPEM) != "cert" || string(got.CAPEM) != "ca" {
		t.Fatalf("got %+v", got)
	}
	for name, mode := range map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("state dir holds %d files, want 4 (no temp files left)", len(entries))
	}
}

func TestLoadPartialIdentityNamesTheMissingFile(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, Identity{AgentID: "1", KeyPEM: []byte("k"), CertPEM: []byte("c"), CAPEM: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, CertFile))
	_, err := Load(dir)
	if err == nil || errors.Is(err, ErrNotEnrolled) || !strings.Contains(err.Error(), CertFile) {
		t.Fatalf("got %v, want an error naming %s", err, CertFile)
	}
}

// TestPendingKey: the key of an enrollment under way is made once, kept
// with mode 0600 for every retry, and removed once the identity is saved.
func TestPendingKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	made := 0
	newKey := func() ([]byte, error) {
		made++
		return []byte("key " + strings.Repeat("k", made)), nil
	}
	first, err := PendingKey(dir, newKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, PendingKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("pending key mode %v, want 0600", st.Mode().Perm())
	}
	again, err := PendingKey(dir, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(first) || made != 1 {
		t.Fatalf("second attempt got %q (%d keys made), want the first key %q", again, made, first)
	}
	if _, err := Load(dir); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("a pending key alone: Load = %v, want ErrNotEnrolled", err)
	}
	if err := Save(dir, Identity{AgentID: "42", KeyPEM: first, CertPEM: []byte("cert"), CAPEM: []byte("ca")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PendingKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending key after Save: %v, want removed", err)
	}
	id, err := Load(dir)
	if err != nil || string(id.KeyPEM) != string(first) {
		t.Errorf("identity key %q, %v; want the pending key %q", id.KeyPEM, err, first)
	}
}
