// Package audit records who changed what, when, and with which result.
package audit

import (
	"context"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// Entry is one audited call.
type Entry struct {
	ID       ids.ID
	At       time.Time
	Username string // empty for calls made without a login; an Open API call's operator
	Role     string
	// Consumer is the third-party app whose token made an Open API call
	// ("appId (name)"); empty for console calls.
	Consumer string
	Method   string
	Path     string
	RemoteIP string
	Status   int    // HTTP status
	Code     int    // envelope code
	Detail   string // short, secret-free description of the target or error
}

// Filter selects audit entries; zero fields select everything.
type Filter struct {
	Username string // exactly this user
	Method   string // exactly this HTTP method
	Path     string // paths that contain this
	From, To time.Time
}

// Store is what audit needs from persistence.
type Store interface {
	AppendAudit(ctx context.Context, e *Entry) error
	Audit(ctx context.Context, f Filter, p paging.Page) ([]Entry, int, error)
}
