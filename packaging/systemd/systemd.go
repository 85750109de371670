// Package systemd holds the systemd units of admq-agent and admq-manager.
//
// admq-agent.service.tmpl is a text/template that agent/service renders for
// each `admq-agent install`; admq-agent.service is the same template
// rendered for the admq-agent package (/usr/bin/admq-agent, settings from
// /etc/default/admq-agent), kept equal to it by a test. admq-manager.service
// is shipped as is. packaging/dist packs both units by path.
package systemd

import _ "embed"

// AgentUnitTemplate is the text/template of admq-agent's unit. It is executed
// with a value that has the fields Name, Description and ExecStart.
//
//go:embed admq-agent.service.tmpl
var AgentUnitTemplate string
