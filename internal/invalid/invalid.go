// Package invalid describes bad input: which field is wrong and why. Domain
// packages return it; each transport maps it to its own "bad request" form.
package invalid

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
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

// Text checks free text a user gives (a description, a display name): valid
// UTF-8, min to max characters (min 0: optional), and no control characters
// (NUL, escape sequences, line breaks) that would corrupt a log line or a
// terminal showing it.
func Text(field, v string, min, max int) error {
	if !utf8.ValidString(v) {
		return Field(field, "is not valid UTF-8")
	}
	n := utf8.RuneCountInString(v)
	if n < min || len(v) > max*4 || n > max {
		switch {
		case min > 0 && n == 0:
			return Field(field, "is required")
		case min == 0:
			return Field(field, "must be at most %d characters", max)
		}
		return Field(field, "must be %d to %d characters", min, max)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return Field(field, "must not contain control characters")
		}
	}
	return nil
}
