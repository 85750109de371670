package service

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestRun drives the program through both of Run's paths: the foreground
// one, and kardianos/service's Run as a service manager would start it.
func TestRun(t *testing.T) {
	for _, interactive := range []bool{true, false} {
		mode := map[bool]string{true: "foreground", false: "service"}[interactive]
		t.Run(mode+"/fn fails", func(t *testing.T) {
			want := errors.New("token refused")
			err := run("admq-agent-test", func(context.Context) error { return want }, interactive)
			if !errors.Is(err, want) {
				t.Errorf("Run = %v; want %v", err, want)
			}
		})
		t.Run(mode+"/SIGTERM stops it", func(t *testing.T) {
			started := make(chan struct{})
			go func() {
				<-started
				syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
			}()
			err := run("admq-agent-test", func(ctx context.Context) error {
				close(started)
				<-ctx.Done()
				return nil
			}, interactive)
			if err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		})
		t.Run(mode+"/stop is bounded", func(t *testing.T) {
			old := stopTimeout
			stopTimeout = 20 * time.Millisecond
			defer func() { stopTimeout = old }()
			started, release := make(chan struct{}), make(chan struct{})
			defer close(release)
			go func() {
				<-started
				syscall.Kill(syscall.Getpid(), syscall.SIGINT)
			}()
			err := run("admq-agent-test", func(ctx context.Context) error {
				close(started)
				<-release // ignores ctx
				return nil
			}, interactive)
			if !errors.Is(err, ErrStopTimeout) {
				t.Errorf("Run = %v; want ErrStopTimeout", err)
			}
		})
	}
}
