package service

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	kservice "github.com/kardianos/service"
)

// ErrStopTimeout means the agent did not return within 20s of being told
// to stop.
var ErrStopTimeout = errors.New("the agent did not stop in time")

// stopTimeout bounds how long Run waits for the agent after a stop signal;
// it is shorter than the unit's TimeoutStopSec (30s), so that the agent
// reports the overrun itself before systemd kills it.
var stopTimeout = 20 * time.Second

// Run runs fn until fn returns or the process is told to stop (SIGINT,
// SIGTERM), then cancels fn's context and waits for it up to 20s.
// It returns fn's error, or ErrStopTimeout.
//
// Started by a service manager (kardianos/service reports a non-interactive
// session), fn runs as that manager's service called name, through
// kardianos' Run; from a terminal it runs in the foreground. On Linux both
// come down to the same start, wait and stop of the same program.
func Run(name string, fn func(ctx context.Context) error) error {
	return run(name, fn, kservice.Interactive())
}

func run(name string, fn func(ctx context.Context) error, interactive bool) error {
	p := &program{fn: fn, stopTimeout: stopTimeout}
	if interactive {
		if err := p.Start(nil); err != nil {
			return err
		}
		p.wait()
		if err := p.Stop(nil); err != nil {
			return err
		}
		return p.err
	}
	s, err := kservice.New(p, &kservice.Config{
		Name:   name,
		Option: kservice.KeyValue{"RunWait": p.wait},
	})
	if err != nil {
		return err
	}
	if err := s.Run(); err != nil {
		return err
	}
	return p.err
}

// program is the kardianos/service Interface around fn.
type program struct {
	fn          func(ctx context.Context) error
	stopTimeout time.Duration

	sig    chan os.Signal
	cancel context.CancelFunc
	done   chan struct{}
	err    error // fn's result, set before done closes
}

var _ kservice.Interface = (*program)(nil)

// Start launches fn; it listens for stop signals first so that none is
// lost between the two.
func (p *program) Start(kservice.Service) error {
	p.sig = make(chan os.Signal, 1)
	signal.Notify(p.sig, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		p.err = p.fn(ctx)
	}()
	return nil
}

// wait blocks until a stop signal arrives or fn returns by itself (a
// permanent error), so that the process then exits and the service manager
// sees it. It is kardianos' RunWait.
func (p *program) wait() {
	select {
	case <-p.sig:
	case <-p.done:
	}
}

// Stop cancels fn and waits for it, at most stopTimeout.
func (p *program) Stop(kservice.Service) error {
	signal.Stop(p.sig)
	p.cancel()
	t := time.NewTimer(p.stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return ErrStopTimeout
	}
}
