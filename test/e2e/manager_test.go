package e2e

import (
	"testing"
	"time"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// The manager, its console API and the resource helpers are in test/testenv;
// this file sets them up for namespace hosts.

// startManager starts a manager (testenv.StartManager) that namespace hosts
// can use: the tunnel on every address so that they reach it, the agents
// built for the run to install, one service name per host address (all
// hosts share one /etc) and a short SSH dial timeout. opts apply after.
func startManager(t testing.TB, opts ...func(*manager.Config)) *testenv.Manager {
	t.Helper()
	return testenv.StartManager(t, append([]func(*manager.Config){forHosts}, opts...)...)
}

func forHosts(cfg *manager.Config) {
	cfg.TunnelAddr = "0.0.0.0:0"
	cfg.AgentDir = agentDir
	cfg.AgentServiceName = prefix + "-agent-{managerIp}"
	cfg.SSHDialTimeout = 2 * time.Second
}

// bootstrapWait is the client option of this suite: a bootstrap (POST
// /server) answers only once the agent is online, so allow minutes.
var bootstrapWait = testenv.WithTimeout(3 * time.Minute)
