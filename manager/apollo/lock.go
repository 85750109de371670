package apollo

import (
	"context"
	"time"

	"github.com/admq/admq-manager/internal/ids"
)

// Locks keeps Apollo's namespace locks; the store implements it. A lock
// is per ADMQ cluster, Apollo cluster (default or a node) and qualified
// namespace.
type Locks interface {
	// LockNamespace gives the lock to user unless someone holds it and
	// returns who holds it now.
	LockNamespace(ctx context.Context, clusterID ids.ID, clusterName, namespace, user string, now time.Time) (string, error)
	NamespaceLock(ctx context.Context, clusterID ids.ID, clusterName, namespace string) (string, bool, error)
	UnlockNamespace(ctx context.Context, clusterID ids.ID, clusterName, namespace string) error
}

// Apollo's rule, when --namespace-lock is on: the first operator to edit a
// namespace since its last release holds it; others may not edit it
// ("namespace … is locked by …", 400) and its holder may not release it
// (another operator must), unless the release is an emergency publish
// (isEmergencyPublish) by a token with a release grant. A release clears
// the lock. Off, no namespace is ever locked.

// acquireLock takes (or checks) the lock of the call's namespace for its
// operator before an edit.
func (x *call) acquireLock() error {
	if !x.s.d.NamespaceLock {
		return nil
	}
	owner, err := x.s.d.Locks.LockNamespace(x.Request().Context(), x.app.cluster.ID, x.clusterName(), x.ns.qualified(), x.operator, x.s.d.Now())
	if err != nil {
		return err
	}
	if owner != x.operator {
		return badRequest("namespace %s is locked by %s: it edited the namespace since its last release; it may go on editing, and another operator releases", x.ns.name, owner)
	}
	return nil
}

// checkReleaseLock refuses a release by the lock holder, unless it is an
// emergency publish.
func (x *call) checkReleaseLock(emergency bool) error {
	if !x.s.d.NamespaceLock || emergency {
		return nil
	}
	owner, held, err := x.s.d.Locks.NamespaceLock(x.Request().Context(), x.app.cluster.ID, x.clusterName(), x.ns.qualified())
	if err != nil {
		return err
	}
	if held && owner == x.operator {
		return badRequest("Config can not be published by yourself: %s edited namespace %s since its last release; another operator must release it (or publish with isEmergencyPublish)", owner, x.ns.name)
	}
	return nil
}

// releaseLock clears the lock after a release.
func (x *call) releaseLock() error {
	if !x.s.d.NamespaceLock {
		return nil
	}
	return x.s.d.Locks.UnlockNamespace(context.WithoutCancel(x.Request().Context()), x.app.cluster.ID, x.clusterName(), x.ns.qualified())
}

func (s *Server) getLock(x *call) error {
	dto := NamespaceLockDTO{NamespaceName: x.ns.name,
		IsEmergencyPublishAllowed: x.covers(accessRelease, x.app.cluster.Name, x.clusterName(), x.ns)}
	if s.d.NamespaceLock {
		owner, held, err := s.d.Locks.NamespaceLock(x.Request().Context(), x.app.cluster.ID, x.clusterName(), x.ns.qualified())
		if err != nil {
			return err
		}
		dto.IsLocked, dto.LockedBy = held, owner
	}
	return writeJSON(x, 200, dto)
}
