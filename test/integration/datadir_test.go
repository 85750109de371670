package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// TestSecondManagerOnOneDataDir is the outside probe's break #5: a second
// manager on the data dir of a running one started, served, and its
// start-up sweep deleted the first one's upload in progress. Now it does
// not open: the data dir is locked, and the error names the holder's pid.
func TestSecondManagerOnOneDataDir(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	cfg := tm.Config()
	cfg.HTTPAddr, cfg.TunnelAddr = "127.0.0.1:0", "127.0.0.1:0"
	var log testenv.SyncBuffer
	second, err := manager.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&log, nil)), prometheus.NewRegistry())
	if err == nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- second.Run(ctx) }()
		cancel()
		<-done
		t.Fatalf("a second manager opened the data dir %s of a running one", cfg.DataDir)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Fatalf("second manager: %v; want the data dir and %q (the holder) named", err, want)
	}
	t.Logf("second manager refused: %v", err)
	c.OK(t, http.MethodGet, "/health", nil, nil) // the first serves on

	// Once the first has stopped, the data dir opens again.
	tm.Stop()
	tm.Start()
	c = tm.Client(t)
	c.OK(t, http.MethodGet, "/health", nil, nil)
}
