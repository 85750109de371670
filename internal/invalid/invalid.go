// Package invalid describes bad input: which field is wrong and why. Domain
// packages return it; each transport maps it to its own "bad request" form.
package invalid

import (
	"errors"
	"fmt"
)

// Error says that one input field is not acceptable.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Field returns an *Error for field with a formatted reason.
func Field(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// As reports whether err is or wraps an *Error and returns it.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
