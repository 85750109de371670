package apollo

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultEnv is the environment a manager serves unless told otherwise.
const DefaultEnv = "PRO"

var envRe = regexp.MustCompile(`^[A-Z0-9_-]{1,32}$`)

// NormalizeEnv returns an environment name as Apollo matches it: trimmed,
// upper case, PROD read as PRO and FWS as FAT.
func NormalizeEnv(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	switch n {
	case "PROD":
		return "PRO"
	case "FWS":
		return "FAT"
	}
	return n
}

// ValidateEnv normalizes name and checks that it can name an environment.
func ValidateEnv(name string) (string, error) {
	n := NormalizeEnv(name)
	if !envRe.MatchString(n) {
		return "", fmt.Errorf("env %q: want 1-32 letters, digits, '_' or '-'", name)
	}
	return n, nil
}
