package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/auth"
)

// slowUser is a user whose password hash costs slowCost, so that checking
// it takes milliseconds (production's cost 10 takes ~60 ms; under the race
// detector far longer): long enough for parallel logins to overlap.
const (
	slowUser = "carol"
	slowCost = 8
)

// The throttle's clock stands still, so that no attempt comes back while
// the test runs, however slowly.
func slowUserHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	gen, _ := ids.NewGenerator(9)
	slow, err := auth.NewService(h.db, h.secret, time.Hour, slowCost, gen, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.CreateUser(t.Context(), slowUser, adminPassword, auth.RoleViewer); err != nil {
		t.Fatal(err)
	}
	d := h.deps(t)
	a := New(d)
	frozen := time.Now()
	a.logins.now = func() time.Time { return frozen }
	h.srv.Close()
	h.srv = httptest.NewServer(a)
	t.Cleanup(h.srv.Close)
	return h
}

// loginFrom sends one login from the local address ip (any 127/8 address
// reaches the test server) and returns the envelope's code.
func loginFrom(t *testing.T, h *harness, ip, user, password string) int {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}}}
	body := fmt.Sprintf(`{"username":%q,"password":%q}`, user, password)
	resp, err := client.Post(h.srv.URL+Prefix+"/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return -1
	}
	defer resp.Body.Close()
	var r reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Errorf("login: not an envelope: %v", err)
	}
	return r.Code
}

// parallelLogins sends the logins all at once and counts the answers by
// code: each 1001 (wrong password) is a password that was checked.
func parallelLogins(t *testing.T, h *harness, ips []string, user, password string) map[int]int {
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for _, ip := range ips {
		wg.Go(func() {
			<-start
			c := loginFrom(t, h, ip, user, password)
			mu.Lock()
			codes[c]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return codes
}

// TestLoginThrottleParallel is the outside probe's break #3: 60 parallel
// wrong-password logins for one user were all checked (none got code 8),
// since the throttle was consulted before the check and told of the
// failure after it. Now an attempt is reserved before the check: at most
// the burst of 5 is checked.
func TestLoginThrottleParallel(t *testing.T) {
	h := slowUserHarness(t)
	ips := make([]string, 60)
	for i := range ips {
		ips[i] = "127.0.0.1"
	}
	codes := parallelLogins(t, h, ips, slowUser, "wrong")
	t.Logf("60 parallel wrong logins from one address: %v (code: count)", codes)
	if codes[codeAuthorizeFailed] > 5 || codes[codeTooManyAttempts] < 55 {
		t.Fatalf("answers %v: want at most 5 passwords checked (code %d), the rest refused with code %d", codes, codeAuthorizeFailed, codeTooManyAttempts)
	}
}

// TestLoginThrottlePerUser: guesses at one user's password from many
// addresses are limited too: 10 in a row, then one every 12 s, whatever
// the addresses; another user is not affected.
func TestLoginThrottlePerUser(t *testing.T) {
	h := slowUserHarness(t)
	var ips []string
	for i := range 30 {
		ips = append(ips, fmt.Sprintf("127.0.%d.%d", 10+i/4, 2+i%4))
	}
	codes := parallelLogins(t, h, ips, slowUser, "wrong")
	t.Logf("30 parallel wrong logins for one user from 30 addresses: %v (code: count)", codes)
	if codes[codeAuthorizeFailed] > 10 || codes[codeTooManyAttempts] < 20 {
		t.Fatalf("answers %v: want at most 10 passwords of one user checked, the rest refused", codes)
	}
	if c := loginFrom(t, h, "127.0.99.1", slowUser, adminPassword); c != codeTooManyAttempts {
		t.Fatalf("right password for the throttled user from a new address: code %d, want %d", c, codeTooManyAttempts)
	}
	if c := loginFrom(t, h, "127.0.99.2", "nobody", "wrong"); c != codeAuthorizeFailed {
		t.Fatalf("another user from a new address: code %d, want %d", c, codeAuthorizeFailed)
	}
}
