package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
)

// Bootstrapper installs a server's agent over SSH; manager/bootstrap
// implements it.
type Bootstrapper interface {
	// CheckCredentials reports, as an *invalid.Error, credentials that
	// cannot be used at all (a private key that does not parse, or that is
	// encrypted and has no passphrase), before anything is stored.
	CheckCredentials(c SSHCredentials) error
	// Bootstrap installs and starts the agent of srv, a pending server that
	// is already stored, and returns once the agent is online, telling p
	// how each of BootstrapSteps goes. On failure it has undone what it did
	// on the host and revoked the join token it issued; the caller removes
	// the server row.
	Bootstrap(ctx context.Context, srv Server, creds SSHCredentials, requestedBy string, p Progress) error
	// ForgetHostKey drops the recorded SSH host key of ip:port, so the next
	// bootstrap trusts the key the host presents then.
	ForgetHostKey(ctx context.Context, ip string, port int) error
}

// Steps of a bootstrap, in order, as Progress hears them.
const (
	// BootstrapConnect: log in over SSH, recording the host key on first
	// use or checking it against the recorded one.
	BootstrapConnect = "connect"
	// BootstrapDetect: the host's OS and architecture, how to become root,
	// and whether an agent is installed already.
	BootstrapDetect = "detect"
	// BootstrapUpload: the agent binary for the platform, checked by its
	// sha256 on the host.
	BootstrapUpload = "upload"
	// BootstrapInstall: the agent's state dir and its service, installed
	// and started with a single-use join token.
	BootstrapInstall = "install"
	// BootstrapOnline: wait for the agent's session to reach the tunnel.
	BootstrapOnline = "online"
)

// BootstrapSteps are the steps of a bootstrap, in order.
var BootstrapSteps = []string{BootstrapConnect, BootstrapDetect, BootstrapUpload, BootstrapInstall, BootstrapOnline}

// Progress hears how a bootstrap goes, one of BootstrapSteps at a time. A
// detail never holds credentials.
type Progress interface {
	// Running marks step as begun, or gives the running step a new detail
	// (the bytes uploaded so far).
	Running(step, detail string)
	// Done marks step as finished, with what it found or did.
	Done(step, detail string)
	// Failed marks step as failed, with why.
	Failed(step, detail string)
}

// NoProgress is a Progress that hears nothing: RegisterServer's, whose
// caller waits for the outcome.
type NoProgress struct{}

// Running does nothing.
func (NoProgress) Running(string, string) {}

// Done does nothing.
func (NoProgress) Done(string, string) {}

// Failed does nothing.
func (NoProgress) Failed(string, string) {}

// BootstrapJobs runs bootstraps as durable jobs that clients follow step
// by step; manager/deploy's engine implements it.
type BootstrapJobs interface {
	// StartBootstrap records a job of the server, by the named user, with
	// one pending step per name in steps, and returns its id at once; run
	// then runs in the background (its ctx ends when the manager stops)
	// with a Progress that records the steps. The job fails with run's
	// error, or succeeds.
	StartBootstrap(ctx context.Context, serverID ids.ID, by string, steps []string,
		run func(ctx context.Context, p Progress) error) (ids.ID, error)
}

// UseBootstrap lets RegisterServer install agents over SSH, keeping
// credentials (when asked to) sealed by sealer, and StartRegisterServer
// run such installs as jobs (jobs nil: it is refused). Call it before
// serving.
func (s *Service) UseBootstrap(b Bootstrapper, sealer Sealer, jobs BootstrapJobs) {
	s.bootstrap, s.sealer, s.jobs = b, sealer, jobs
}

// StartRegisterServer is RegisterServer for a server with SSH credentials
// that answers at once: the server is stored pending, as RegisterServer
// does, and the bootstrap runs as a job whose id is returned with the
// server. What RegisterServer refuses before SSH is refused here the same
// way, with no job. A failed job has removed the server, as a failed
// RegisterServer does; the job stays, with the step that failed and why.
func (s *Service) StartRegisterServer(ctx context.Context, n NewServer) (Server, ids.ID, error) {
	if n.SSH.IsZero() {
		return Server{}, 0, invalid.Field("async", "only a server installed over SSH (password or privateKey) is added as a job")
	}
	if s.bootstrap != nil && s.jobs == nil {
		return Server{}, 0, invalid.Field("async", "this manager does not run SSH bootstraps as jobs")
	}
	srv, sealed, err := s.storeServer(ctx, &n)
	if err != nil {
		return Server{}, 0, err
	}
	jobID, err := s.jobs.StartBootstrap(ctx, srv.ID, n.RequestedBy, BootstrapSteps, func(ctx context.Context, p Progress) error {
		_, err := s.bootstrapServer(ctx, srv, n, sealed, p)
		return err
	})
	if err != nil {
		return Server{}, 0, s.undoServer(ctx, srv.ID, err)
	}
	return srv, jobID, nil
}

// bootstrapServer installs the agent of srv, stored pending, and keeps
// the credentials when asked to; a failure removes srv.
func (s *Service) bootstrapServer(ctx context.Context, srv Server, n NewServer, sealed SealedSecrets, p Progress) (Server, error) {
	if err := s.bootstrap.Bootstrap(ctx, srv, n.SSH, n.RequestedBy, p); err != nil {
		return Server{}, s.undoServer(ctx, srv.ID, err)
	}
	// The agent is installed: finish even if the caller has gone.
	ctx = context.WithoutCancel(ctx)
	if n.KeepCredentials {
		if err := s.store.SetServerSecrets(ctx, srv.ID, sealed); err != nil {
			return Server{}, fmt.Errorf("server %s is bootstrapped but its credentials could not be kept: %w", srv.ID, err)
		}
	}
	return s.Server(ctx, srv.ID)
}

// undoServer removes a server whose bootstrap failed with err, and
// returns err (joined with the removal's own failure).
func (s *Service) undoServer(ctx context.Context, id ids.ID, err error) error {
	// The request may be gone; the undo must happen anyway.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if derr := s.DeleteServer(dctx, id); derr != nil && !errors.Is(derr, ErrServerNotFound) {
		return errors.Join(err, fmt.Errorf("remove server %s after failed bootstrap: %w", id, derr))
	}
	return err
}
