package main

import (
	"slices"
	"testing"
)

func TestParsePprofTop(t *testing.T) {
	out := `File: admq-manager
Type: cpu
Time: 2025-01-01 10:00:00 UTC
Duration: 20s, Total samples = 12.5s (62.50%)
Showing nodes accounting for 3.1s, 24.80% of 12.5s total
Dropped 800 nodes (cum <= 0.06s)
Showing top 3 nodes out of 412
      flat  flat%   sum%        cum   cum%
     1.50s 12.00% 12.00%      1.50s 12.00%  runtime/internal/syscall.Syscall6
     0.90s  7.20% 19.20%      0.95s  7.60%  crypto/internal/fips140/nistec.p256Sqr
     0.70s  5.60% 24.80%      2.10s 16.80%  runtime.mallocgc
`
	got := parsePprofTop(out, 3)
	want := []string{
		"1.50s 12.00% 12.00% 1.50s 12.00% runtime/internal/syscall.Syscall6",
		"0.90s 7.20% 19.20% 0.95s 7.60% crypto/internal/fips140/nistec.p256Sqr",
		"0.70s 5.60% 24.80% 2.10s 16.80% runtime.mallocgc",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("parsePprofTop:\n got %q\nwant %q", got, want)
	}
	if got := parsePprofTop("no table here\n", 3); len(got) != 0 {
		t.Fatalf("no table: got %q", got)
	}
}

func TestGoroutineTop(t *testing.T) {
	text := `goroutine profile: total 7
4 @ 0x1 0x2
#	0x47c0ae	runtime.gopark+0xce	/go/src/runtime/proc.go:435
#	0x8a1c2d	github.com/hashicorp/yamux.(*Session).recvLoop+0x8d	/x/session.go:500

2 @ 0x1 0x2
#	0x47c0ae	runtime.gopark+0xce	/go/src/runtime/proc.go:435
#	0x4a1b2c	sync.(*Cond).Wait+0x8d	/go/src/sync/cond.go:70
#	0x8a1c2d	github.com/hashicorp/yamux.(*Session).send+0x8d	/x/session.go:400

1 @ 0x1
#	0x8b1c2d	main.main+0x8d	/x/main.go:4
`
	got := goroutineTop(text, 2)
	want := []string{
		"4 of 7  github.com/hashicorp/yamux.(*Session).recvLoop",
		"2 of 7  github.com/hashicorp/yamux.(*Session).send",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("goroutineTop:\n got %q\nwant %q", got, want)
	}
}
