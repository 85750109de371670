// Command admq-agent runs on each managed server and keeps one outbound
// connection to admq-manager. It also installs itself as a system service.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/internal/version"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "admq-agent:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "admq-agent:", err)
	os.Exit(1)
}

const usage = `usage: admq-agent <command> [flags]

commands:
  run        connect to the manager (enrolling first if needed) and serve it
  install    install the agent as a system service and start it
  uninstall  stop and remove the service (--purge: and the agent's identity)
  start      start the installed service
  stop       stop the installed service
  status     print running, stopped or not-installed
  version    print the version

"admq-agent <command> -h" lists a command's flags and the ADMQ_* environment
variables they default to; a flag on the command line wins.

exit status: 0 done; 1 failed; 64 bad flags or arguments;
  run: 78 stopped on an error a restart cannot fix (bad config, no or
       refused join token, CA pin mismatch, damaged state dir);
  status: 0 running, 3 stopped, 4 not installed.
`

// Exit statuses besides 0 and 1.
const (
	exitUsage        = 64 // EX_USAGE
	exitConfig       = 78 // EX_CONFIG; the unit's RestartPreventExitStatus
	exitStopped      = 3  // as LSB init scripts' and systemctl's status
	exitNotInstalled = 4
)

// exitError ends the process with code after printing err, if any.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{exitUsage, errors.New("no command given")}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return runAgent(args, stderr)
	case "install":
		return install(args, stdout, stderr)
	case "uninstall":
		return uninstall(args, stdout, stderr)
	case "start", "stop":
		return control(cmd, args, stdout, stderr)
	case "status":
		return status(args, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.Version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{exitUsage, fmt.Errorf("unknown command %q", cmd)}
}

// newFlagSet returns the flag set of one command.
func newFlagSet(cmd string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("admq-agent "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args into fs; bad flags and stray arguments are usage
// errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, nil} // fs has printed the error and usage
	}
	if fs.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	return nil
}

// agentFlags adds the flags that make an agent.Config, shared by run and
// install.
func agentFlags(fs *flag.FlagSet, cfg *agent.Config) {
	fs.StringVar(&cfg.ManagerAddr, "manager", envOr("ADMQ_MANAGER", ""), "manager tunnel address host:port (env ADMQ_MANAGER)")
	fs.StringVar(&cfg.JoinToken, "token", envOr("ADMQ_JOIN_TOKEN", ""), "join token, needed only until enrolled (env ADMQ_JOIN_TOKEN)")
	fs.StringVar(&cfg.CACertHash, "ca-cert-hash", envOr("ADMQ_CA_CERT_HASH", ""), "manager CA pin sha256:<hex>, if the token carries none (env ADMQ_CA_CERT_HASH)")
	fs.StringVar(&cfg.StateDir, "state-dir", envOr("ADMQ_STATE_DIR", cfg.StateDir), "directory for the agent's identity (env ADMQ_STATE_DIR)")
	fs.StringVar(&cfg.AdvertiseIP, "advertise-ip", envOr("ADMQ_ADVERTISE_IP", ""), "address the manager records for this server (env ADMQ_ADVERTISE_IP)")
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
