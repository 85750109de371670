// Package joinstring is the one string an operator hands an agent to join
// a manager: its join token and the pin of the manager's CA,
// "<id>.<secret>::sha256:<hex>". The manager formats it when it issues a
// token; the agent parses it from --token.
package joinstring

import "strings"

// separator stands between the token and the CA pin.
const separator = "::"

// Format joins "<id>.<secret>" and the CA pin into the one string an agent
// needs: "<id>.<secret>::sha256:<hex>".
func Format(token, pin string) string { return token + separator + pin }

// Parse splits a join string into its token and CA pin, ignoring white
// space around it; a bare token returns an empty pin.
func Parse(s string) (token, pin string) {
	token, pin, _ = strings.Cut(strings.TrimSpace(s), separator)
	return token, pin
}
