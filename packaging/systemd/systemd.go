// Package systemd holds the systemd units of admq-agent and admq-manager, so
// that `admq-agent install` and the release packages use the same text.
//
// The agent's unit is a text/template that agent/service renders (with the
// executable, arguments and service name of each install); the manager's is
// a plain unit shipped as is.
package systemd

import _ "embed"

// AgentUnitTemplate is the text/template of admq-agent's unit. It is executed
// with a value that has the fields Name, Description and ExecStart.
//
//go:embed admq-agent.service.tmpl
var AgentUnitTemplate string

// ManagerUnit is admq-manager's unit as the admq-manager package installs it.
//
//go:embed admq-manager.service
var ManagerUnit string
