package agent

import "strings"

// splitJoin splits "<id>.<secret>::sha256:<hex>" into token and pin.
func splitJoin(s string) (token, pin string) {
	token, pin, _ = strings.Cut(strings.TrimSpace(s), "::")
	return token, pin
}
