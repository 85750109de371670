package bootstrap

import (
	"errors"
	"fmt"
)

// Errors callers branch on; transports map them to their own codes. Every
// error Bootstrap returns wraps one of them, an *invalid.Error, or a store
// error.
var (
	// ErrUnreachable: no TCP connection or SSH handshake with the host, or
	// the connection broke.
	ErrUnreachable = errors.New("cannot connect to the server over SSH")
	// ErrAuthFailed: the host refused the account's password or key.
	ErrAuthFailed = errors.New("SSH authentication failed")
	// ErrHostKeyChanged: the host presented a key other than the one
	// recorded on first use. Errors wrapping it are *HostKeyChangedError.
	ErrHostKeyChanged = errors.New("SSH host key changed")
	// ErrCommandFailed: a command on the host failed. Errors wrapping it are
	// *CommandError.
	ErrCommandFailed = errors.New("SSH command failed")
	// ErrUnsupportedPlatform: no agent is built for the host's OS or
	// architecture.
	ErrUnsupportedPlatform = errors.New("server platform is not supported")
	// ErrAgentBinaryMissing: the manager's agent directory lacks the binary
	// for the host's platform.
	ErrAgentBinaryMissing = errors.New("agent binary for this platform is missing on the manager")
	// ErrAgentInstalled: an agent service of that name exists on the host.
	ErrAgentInstalled = errors.New("an agent service is already installed on the server")
	// ErrAgentTimeout: the agent was installed but did not come online.
	ErrAgentTimeout = errors.New("agent did not come online")
	// ErrHostKeyNotFound: no host key is recorded for that address.
	ErrHostKeyNotFound = errors.New("no SSH host key is recorded for this address")
)

// HostKeyChangedError is a host key that differs from the one recorded.
type HostKeyChangedError struct {
	Address   string // ip:port
	KeyType   string // type of the presented key
	Known     string // SHA256 fingerprint of the recorded key
	Presented string // SHA256 fingerprint of the presented key
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("SSH host key of %s changed: recorded %s, presented %s (%s); if the host was reinstalled, forget the old key with DELETE /admq-manager/server/hostkey and retry",
		e.Address, e.Known, e.Presented, e.KeyType)
}

// Is makes errors.Is(err, ErrHostKeyChanged) hold.
func (e *HostKeyChangedError) Is(target error) bool { return target == ErrHostKeyChanged }

// ErrorData is what a client is told besides the message.
func (e *HostKeyChangedError) ErrorData() map[string]any {
	return map[string]any{
		"address":              e.Address,
		"keyType":              e.KeyType,
		"knownFingerprint":     e.Known,
		"presentedFingerprint": e.Presented,
	}
}

// CommandError is a command that failed on the host.
type CommandError struct {
	Step       string // what the command was for, e.g. "upload agent binary"
	ExitStatus int    // -1: no exit status (killed, timed out)
	Stderr     string // trimmed, bounded, secrets masked
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("SSH command failed: %s (exit status %d)", e.Step, e.ExitStatus)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Is makes errors.Is(err, ErrCommandFailed) hold.
func (e *CommandError) Is(target error) bool { return target == ErrCommandFailed }

// ErrorData is what a client is told besides the message.
func (e *CommandError) ErrorData() map[string]any {
	return map[string]any{"command": e.Step, "exitStatus": e.ExitStatus, "stderr": e.Stderr}
}

// Error is a failed bootstrap: the step it failed in, why, and whether the
// undo on the host worked.
type Error struct {
	Step string
	Err  error
	// Cleanup is "" when nothing had been changed on the host, "done" when
	// the changes were undone, otherwise what went wrong undoing them.
	Cleanup string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("bootstrap failed at %q: %v", e.Step, e.Err)
	if e.Cleanup != "" && e.Cleanup != "done" {
		msg += "; cleanup on the server also failed: " + e.Cleanup
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// stepDetail is the failed step's detail in a job: why, and how the undo
// on the host went.
func (e *Error) stepDetail() string {
	msg := e.Err.Error()
	var ce *CommandError
	if !errors.As(e.Err, &ce) && e.Step != phaseOf(e.Step) {
		// Which part of the step it was; a failed command names it already.
		msg = e.Step + ": " + msg
	}
	switch e.Cleanup {
	case "":
	case "done":
		msg += "; what the bootstrap had changed on the server was undone"
	default:
		msg += "; cleanup on the server also failed: " + e.Cleanup
	}
	return msg
}

// ErrorData merges the cause's data with the step and the cleanup outcome.
func (e *Error) ErrorData() map[string]any {
	data := map[string]any{}
	var d interface{ ErrorData() map[string]any }
	if errors.As(e.Err, &d) {
		for k, v := range d.ErrorData() {
			data[k] = v
		}
	}
	data["step"] = e.Step
	if e.Cleanup == "" {
		data["cleanup"] = "not needed"
	} else {
		data["cleanup"] = e.Cleanup
	}
	return data
}
