package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/agent/service"
	"github.com/admq/admq-manager/internal/logx"
	"github.com/admq/admq-manager/internal/version"
)

func serviceNameFlag(fs *flag.FlagSet) *string {
	return fs.String("service-name", envOr("ADMQ_SERVICE_NAME", service.DefaultName), "name of the system service (env ADMQ_SERVICE_NAME)")
}

func runAgent(args []string, stderr io.Writer) error {
	cfg := agent.DefaultConfig()
	fs := newFlagSet("run", stderr)
	agentFlags(fs, &cfg)
	name := serviceNameFlag(fs)
	logFormat := fs.String("log-format", envOr("ADMQ_LOG_FORMAT", "text"), "log format: text or json (env ADMQ_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr("ADMQ_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env ADMQ_LOG_LEVEL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := logx.New(stderr, *logFormat, *logLevel)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	log.Info("admq-agent starting", "version", version.Version, "manager", cfg.ManagerAddr, "stateDir", cfg.StateDir)
	err = service.Run(*name, func(ctx context.Context) error {
		return service.RunAgent(ctx, cfg, log)
	})
	switch {
	case err == nil:
		log.Info("admq-agent stopped")
		return nil
	case errors.Is(err, service.ErrStopTimeout):
		return err
	}
	// agent.Run returns only when told to stop or on a permanent error.
	return &exitError{exitConfig, err}
}

func install(args []string, stdout, stderr io.Writer) error {
	cfg := service.Config{Agent: agent.DefaultConfig()}
	fs := newFlagSet("install", stderr)
	agentFlags(fs, &cfg.Agent)
	name := serviceNameFlag(fs)
	start := fs.Bool("start", true, "start the service once installed")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Name = *name
	in, err := service.Install(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installed service %s (%s): %s\n", *name, in.Platform, in.Path)
	if in.TokenFile != "" {
		fmt.Fprintf(stdout, "join token in %s until the agent has enrolled\n", in.TokenFile)
	}
	if !*start {
		return nil
	}
	if err := service.Start(*name); err != nil {
		return fmt.Errorf("%w (the service stays installed: see its log, then admq-agent start --service-name %s)", err, *name)
	}
	fmt.Fprintf(stdout, "started service %s\n", *name)
	return nil
}

func uninstall(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("uninstall", stderr)
	name := serviceNameFlag(fs)
	purge := fs.Bool("purge", false, "also remove the agent's identity and join token from --state-dir")
	stateDir := fs.String("state-dir", envOr("ADMQ_STATE_DIR", agent.DefaultConfig().StateDir), "the agent's state dir, for --purge (env ADMQ_STATE_DIR)")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir := ""
	if *purge {
		dir = *stateDir
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	installed, err := service.Uninstall(*name, dir, log)
	if err != nil {
		return err
	}
	if installed {
		fmt.Fprintf(stdout, "uninstalled service %s\n", *name)
	} else {
		fmt.Fprintf(stdout, "service %s is not installed\n", *name)
	}
	if *purge {
		fmt.Fprintf(stdout, "removed the agent's identity from %s\n", dir)
	}
	return nil
}

func control(cmd string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(cmd, stderr)
	name := serviceNameFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	f, done := service.Start, "started"
	if cmd == "stop" {
		f, done = service.Stop, "stopped"
	}
	if err := f(*name); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s service %s\n", done, *name)
	return nil
}

func status(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	name := serviceNameFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := service.Status(*name)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, st)
	switch st {
	case service.StateStopped:
		return &exitError{exitStopped, nil}
	case service.StateNotInstalled:
		return &exitError{exitNotInstalled, nil}
	}
	return nil
}
