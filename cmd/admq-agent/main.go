// Command admq-agent runs on each managed server and keeps one outbound
// connection to admq-manager.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/internal/logx"
	"github.com/admq/admq-manager/internal/version"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "admq-agent:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: admq-agent <command> [flags]

commands:
  run       connect to the manager (enrolling first if needed) and serve it
  version   print the version
`

func run(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "run":
		return runAgent(args[1:], stderr)
	case "version", "--version", "-version":
		fmt.Println(version.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runAgent(args []string, stderr io.Writer) error {
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("admq-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.ManagerAddr, "manager", envOr("ADMQ_MANAGER", ""), "manager tunnel address host:port (env ADMQ_MANAGER)")
	fs.StringVar(&cfg.JoinToken, "token", envOr("ADMQ_JOIN_TOKEN", ""), "join token, needed only until enrolled (env ADMQ_JOIN_TOKEN)")
	fs.StringVar(&cfg.CACertHash, "ca-cert-hash", envOr("ADMQ_CA_CERT_HASH", ""), "manager CA pin sha256:<hex>, if the token carries none (env ADMQ_CA_CERT_HASH)")
	fs.StringVar(&cfg.StateDir, "state-dir", envOr("ADMQ_STATE_DIR", cfg.StateDir), "directory for the agent's identity (env ADMQ_STATE_DIR)")
	fs.StringVar(&cfg.AdvertiseIP, "advertise-ip", envOr("ADMQ_ADVERTISE_IP", ""), "address the manager records for this server (env ADMQ_ADVERTISE_IP)")
	logFormat := fs.String("log-format", envOr("ADMQ_LOG_FORMAT", "text"), "log format: text or json (env ADMQ_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr("ADMQ_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env ADMQ_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	log, err := logx.New(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("admq-agent starting", "version", version.Version, "manager", cfg.ManagerAddr, "stateDir", cfg.StateDir)
	return agent.Run(ctx, cfg, log)
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
