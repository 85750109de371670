package systemd_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/admq/admq-manager/agent/service"
)

var update = flag.Bool("update", false, "rewrite admq-agent.service from the template")

// PackageAgentUnit is the unit the admq-agent package ships: the install
// command's template, for the packaged binary, configured by
// /etc/default/admq-agent rather than flags.
var packageAgentUnit = service.Unit{
	Name:       service.DefaultName,
	Executable: "/usr/bin/admq-agent",
	Arguments:  []string{"run", "--log-format", "json"},
}

func TestAgentUnitIsRendered(t *testing.T) {
	want, err := service.SystemdUnit(packageAgentUnit)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("admq-agent.service", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("admq-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("admq-agent.service is not what admq-agent.service.tmpl renders for the package: go test ./packaging/systemd -update")
	}
}

// TestUnitsVerify has systemd-analyze check the shipped units. It checks
// that ExecStart's binary exists, so each unit is checked as a copy whose
// ExecStart points at a stand-in.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd): units not verified")
	}
	for _, name := range []string{"admq-agent.service", "admq-manager.service"} {
		t.Run(name, func(t *testing.T) {
			unit, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			exe := filepath.Join(dir, strings.TrimSuffix(name, ".service"))
			if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(unit), "ExecStart=/usr/bin/"+filepath.Base(exe), "ExecStart="+exe)
			if text == string(unit) {
				t.Fatalf("%s: no ExecStart=/usr/bin/%s", name, filepath.Base(exe))
			}
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			cmd := exec.Command(analyze, "verify", "--man=no", path)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil || out.Len() > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out.String())
			}
		})
	}
}
