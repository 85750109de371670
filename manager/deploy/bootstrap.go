package deploy

import (
	"context"
	"sync"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
)

var _ fleet.BootstrapJobs = (*Engine)(nil)

// ReasonBootstrapRestarted is the reason of a bootstrap job the manager
// was restarted under.
const ReasonBootstrapRestarted = "manager restarted during the SSH bootstrap: the server stays pending; " +
	"if its agent does not come online, delete the server, remove the agent from the host and add it again"

// StartBootstrap implements fleet.BootstrapJobs: a server's SSH bootstrap
// recorded as a job of type TypeBootstrap, with a step per name (their
// node id is zero), followed like a deployment through Job, Jobs and
// Changed. run runs until it returns or the engine stops; the job then
// fails with run's error (and the code and data Deps.ErrorCode gives it),
// or succeeds.
func (e *Engine) StartBootstrap(ctx context.Context, serverID ids.ID, by string, names []string,
	run func(ctx context.Context, p fleet.Progress) error) (ids.ID, error) {
	now := e.d.Now()
	j := Job{ID: e.d.IDs.Next(), Type: TypeBootstrap, ServerID: serverID, State: JobPending, CreatedBy: by, CreatedAt: now}
	steps := make([]Step, len(names))
	for i, name := range names {
		steps[i] = Step{ID: e.d.IDs.Next(), JobID: j.ID, Name: name, State: StepPending}
	}
	e.mu.Lock()
	err := e.d.Store.CreateJob(ctx, j, steps, nil, now)
	e.mu.Unlock()
	if err != nil {
		return 0, err
	}
	e.d.Log.Info("bootstrap job created", "job", j.ID, "server", serverID, "by", by)
	e.notify()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.runBootstrap(j, steps, run)
	}()
	return j.ID, nil
}

func (e *Engine) runBootstrap(j Job, steps []Step, run func(ctx context.Context, p fleet.Progress) error) {
	// The bootstrap undoes its work when the engine stops, and the job
	// records that: its writes outlive the engine's context.
	wctx := context.WithoutCancel(e.ctx)
	j.State, j.StartedAt = JobRunning, e.d.Now()
	e.saveJob(wctx, j)
	p := &jobProgress{e: e, ctx: wctx, steps: steps}
	err := run(e.ctx, p)
	reason := ""
	if err != nil {
		reason = err.Error()
		if e.d.ErrorCode != nil {
			j.Code, j.ErrorData = e.d.ErrorCode(err)
		}
		p.settle(reason)
	}
	e.finishJob(wctx, j, reason)
}

// jobProgress records a bootstrap's steps as they go.
type jobProgress struct {
	e     *Engine
	ctx   context.Context
	mu    sync.Mutex
	steps []Step
}

var _ fleet.Progress = (*jobProgress)(nil)

func (p *jobProgress) Running(step, detail string) { p.set(step, StepRunning, detail) }
func (p *jobProgress) Done(step, detail string)    { p.set(step, StepSucceeded, detail) }
func (p *jobProgress) Failed(step, detail string)  { p.set(step, StepFailed, detail) }

func (p *jobProgress) set(name, state, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.steps {
		s := &p.steps[i]
		if s.Name != name {
			continue
		}
		now := p.e.d.Now()
		if s.StartedAt.IsZero() {
			s.StartedAt = now
		}
		if state != StepRunning {
			s.FinishedAt = now
		}
		s.State, s.Detail = state, truncate(detail, 8<<10)
		p.e.saveStep(p.ctx, *s)
		return
	}
	p.e.d.Log.Error("bootstrap reported an unknown step", "step", name)
}

// settle ends the steps a failed bootstrap left: a running one failed
// with the job's reason, the pending ones cancelled.
func (p *jobProgress) settle(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.e.d.Now()
	why := "not run: the bootstrap failed"
	for i := range p.steps {
		s := &p.steps[i]
		switch s.State {
		case StepRunning:
			s.State, s.Detail, s.FinishedAt = StepFailed, truncate(reason, 8<<10), now
			p.e.saveStep(p.ctx, *s)
		case StepPending:
			s.State, s.Detail, s.FinishedAt = StepCancelled, why, now
			p.e.saveStep(p.ctx, *s)
		}
		if s.State == StepFailed {
			why = "not run: " + s.Name + " failed"
		}
	}
}
