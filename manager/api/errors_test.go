package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/admq/admq-manager/manager/pkg"
)

// TestDiskFull: a full disk on the manager, wherever a handler met it (a
// store write said as ENOSPC, an upload interrupted by its own write), is
// code 9 with HTTP 507 and a message without paths, never a 500 or a
// client error; the details go to the log.
func TestDiskFull(t *testing.T) {
	for name, err := range map[string]error{
		"store write": fmt.Errorf("store: create area: database or disk is full (13) (%w)", syscall.ENOSPC),
		"upload":      fmt.Errorf("%w: receiving p-V1-x86.tar: write /var/lib/admq/packages/tmp/upload-1: %w", pkg.ErrUploadInterrupted, syscall.ENOSPC),
		"quota":       fmt.Errorf("write: %w", syscall.EDQUOT),
	} {
		t.Run(name, func(t *testing.T) {
			ae, internal := classify(err)
			if ae.code != codeDiskFull || codeInfo[ae.code].status != http.StatusInsufficientStorage || !internal {
				t.Fatalf("classify: code %d (HTTP %d), logged %v; want %d, 507, logged", ae.code, codeInfo[ae.code].status, internal, codeDiskFull)
			}
			if strings.Contains(ae.message, "/") || !strings.Contains(ae.message, "disk is full") {
				t.Errorf("message %q: want the disk named full and no path", ae.message)
			}
		})
	}
	// An upload cut by the client stays the client's error.
	if ae, _ := classify(fmt.Errorf("%w: receiving x: %w", pkg.ErrUploadInterrupted, errors.New("unexpected EOF"))); ae.code != codeParamInvalid {
		t.Errorf("interrupted upload: code %d, want %d", ae.code, codeParamInvalid)
	}
}
