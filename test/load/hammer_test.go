package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRunHammerRefusesBadArgs(t *testing.T) {
	t.Setenv("ADMQ_LOAD_TOKEN", "t")
	for _, args := range [][]string{
		{},
		{"-http", "127.0.0.1:1"},
		{"-http", "127.0.0.1:1", "-path", "server"},
		{"-http", "127.0.0.1:1", "-path", "/server", "-clients", "0"},
		{"-http", "127.0.0.1:1", "-path", "/server", "-duration", "0s"},
	} {
		if code := runHammer(args); code != 2 {
			t.Errorf("runHammer(%q) = %d, want 2", args, code)
		}
	}
}

// The client counts an answer whose envelope code is not 0 as failed.
func TestHammerCountsFailures(t *testing.T) {
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if r.Header.Get("Authorization") != "Bearer tok" || n%2 == 0 {
			w.Write([]byte(`{"code":1001,"msg":"no"}`))
			return
		}
		w.Write([]byte(`{"code":0,"data":{"total":1}}`))
	}))
	defer srv.Close()
	a := newAPIClient(strings.TrimPrefix(srv.URL, "http://"))
	a.token = "tok"
	stop := make(chan struct{})
	time.AfterFunc(200*time.Millisecond, func() { close(stop) })
	all, failed, first := hammer(t.Context(), 1, stop, func(ctx context.Context) error { return a.check(ctx, "/server") })
	if len(all) < 2 || failed != int64(len(all)/2) || first == nil {
		t.Fatalf("%d calls, %d failed (first %v): want every second one failed", len(all), failed, first)
	}
}
