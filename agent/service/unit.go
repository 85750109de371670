package service

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/admq/admq-manager/packaging/systemd"
)

// unitTemplate is packaging/systemd/admq-agent.service.tmpl, the one text
// behind both `admq-agent install` and the admq-agent package's unit.
var unitTemplate = template.Must(template.New("admq-agent.service").Option("missingkey=error").Parse(systemd.AgentUnitTemplate))

// Unit is what a systemd unit for admq-agent is rendered from.
type Unit struct {
	// Name is the service name; the unit file is Name + ".service".
	Name string
	// Executable is the absolute path of the admq-agent binary.
	Executable string
	// Arguments follow Executable on the ExecStart line.
	Arguments []string
}

// SystemdUnit renders the systemd unit for u.
func SystemdUnit(u Unit) (string, error) {
	if err := validName(u.Name); err != nil {
		return "", err
	}
	if !filepath.IsAbs(u.Executable) {
		return "", fmt.Errorf("executable %q: want an absolute path", u.Executable)
	}
	words := make([]string, 0, 1+len(u.Arguments))
	for _, w := range append([]string{u.Executable}, u.Arguments...) {
		q, err := execWord(w)
		if err != nil {
			return "", err
		}
		words = append(words, q)
	}
	var b strings.Builder
	err := unitTemplate.Execute(&b, struct{ Name, Description, ExecStart string }{u.Name, description(u.Name), strings.Join(words, " ")})
	if err != nil {
		return "", fmt.Errorf("render unit: %w", err)
	}
	// kardianos/service reads a custom SystemdScript as a template of its
	// own; a rendered unit must reach it with nothing left to expand.
	if strings.Contains(b.String(), "{{") {
		return "", errors.New(`render unit: "{{" may not appear in a flag value`)
	}
	return b.String(), nil
}

func description(name string) string {
	if name == DefaultName {
		return "admq-agent: connection to admq-manager"
	}
	return "admq-agent (" + name + "): connection to admq-manager"
}

// execWord quotes one word of a systemd command line (systemd.service(5),
// "Command lines"): "%" starts a specifier and "$" a variable, so both are
// doubled; anything but plain characters goes inside double quotes.
func execWord(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%q: control characters cannot go on a unit's command line", s)
		}
	}
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@=,+-") == "" {
		return s, nil
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

// validName accepts names that are safe as a unit name, an init script's
// file name and a syslog tag alike; the manager's SSH bootstrap picks them
// from the same set. A final '@' would make a systemd template unit.
func validName(name string) error {
	ok := name != "" && len(name) <= 64 && isAlnum(rune(name[0])) && !strings.HasSuffix(name, "@")
	for _, r := range name {
		if !isAlnum(r) && r != '-' && r != '_' && r != '.' && r != '@' {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("service name %q: want 1-64 letters, digits, '-', '_', '.' or '@', starting with a letter or digit and not ending in '@'", name)
	}
	return nil
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}
