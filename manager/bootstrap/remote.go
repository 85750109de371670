package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
)

// authMethods turns credentials into SSH auth methods: the key first, then
// the password (also for keyboard-interactive prompts, which is how hosts
// with PAM often ask for it).
func authMethods(c fleet.SSHCredentials) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	if c.PrivateKey != "" {
		var (
			signer ssh.Signer
			err    error
		)
		if c.Passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(c.PrivateKey), []byte(c.Passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(c.PrivateKey))
		}
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, invalid.Field("passphrase", "the private key is encrypted: give its passphrase")
		case err != nil && c.Passphrase != "" && strings.Contains(err.Error(), "decryption password incorrect"):
			return nil, invalid.Field("passphrase", "does not decrypt the private key")
		case err != nil:
			// The parser's messages name the problem, never key material.
			return nil, invalid.Field("privateKey", "not a usable PEM private key: %v", err)
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if pw := c.Password; pw != "" {
		methods = append(methods, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	return methods, nil
}

// dialConfig is how to reach one host.
type dialConfig struct {
	Address          string // ip:port
	User             string
	Auth             []ssh.AuthMethod
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	HostKeys         HostKeyStore
	Now              func() time.Time
	// Accepted is told about the host key the host presented once it is
	// accepted: recorded on first use, or found to be the recorded one.
	Accepted func(k HostKey, recorded bool)
}

// dial connects and authenticates, checking the host key.
func dial(ctx context.Context, c dialConfig) (*ssh.Client, error) {
	known, err := lookupHostKey(ctx, c.HostKeys, c.Address)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: c.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.Address, unwrapOp(err))
	}
	var hostKeyErr error
	check := trustOnFirstUse(ctx, c.HostKeys, c.Address, known, c.Now, c.Accepted)
	cfg := &ssh.ClientConfig{
		User: c.User,
		Auth: c.Auth,
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			hostKeyErr = check(hostname, remote, key)
			return hostKeyErr
		},
		HostKeyAlgorithms: hostKeyAlgorithms(known),
	}
	_ = conn.SetDeadline(c.Now().Add(c.HandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, c.Address, cfg)
	if !stop() && err == nil {
		sc.Close()
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		var changed *HostKeyChangedError
		switch {
		case errors.As(hostKeyErr, &changed):
			return nil, changed
		case hostKeyErr != nil:
			return nil, hostKeyErr
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.Address, ctx.Err())
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("%w: %s refused user %q with the given password or key", ErrAuthFailed, c.Address, c.User)
		}
		return nil, fmt.Errorf("%w: SSH handshake with %s: %v", ErrUnreachable, c.Address, unwrapOp(err))
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// unwrapOp drops the "dial tcp a->b:" prefix of net errors, which repeats
// the address the caller already names.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// privilege is how commands that need root are run.
type privilege int

const (
	asRoot     privilege = iota // the account is root
	sudoNoPW                    // sudo -n works
	sudoWithPW                  // sudo -S with the SSH password on stdin
)

// String says how root is reached, for a step's detail.
func (p privilege) String() string {
	switch p {
	case sudoNoPW:
		return "root through sudo"
	case sudoWithPW:
		return "root through sudo with the account's password"
	}
	return "logged in as root"
}

// remote runs commands on a connected host.
type remote struct {
	client   *ssh.Client
	priv     privilege
	password string        // for sudo -S
	timeout  time.Duration // per command
	secrets  []string      // masked in anything reported
}

// Bounds on what is kept of a command's output.
const (
	maxStdout   = 64 << 10
	maxStderr   = 16 << 10
	shownStderr = 2000
)

// run runs script with sh, as the account.
func (r *remote) run(ctx context.Context, step, script string, stdin io.Reader) (string, error) {
	return r.exec(ctx, step, "sh -c "+quote(script), stdin)
}

// runRoot runs script with sh as root, through sudo if need be.
func (r *remote) runRoot(ctx context.Context, step, script string, stdin io.Reader) (string, error) {
	cmd := "sh -c " + quote(script)
	switch r.priv {
	case sudoNoPW:
		cmd = "sudo -n -- " + cmd
	case sudoWithPW:
		// -k: always ask, so the password line is always consumed; sudo
		// reads it byte by byte and leaves the rest of stdin to the command.
		cmd = "sudo -k -S -p '' -- " + cmd
		rest := stdin
		if rest == nil {
			rest = strings.NewReader("")
		}
		stdin = io.MultiReader(strings.NewReader(r.password+"\n"), rest)
	}
	return r.exec(ctx, step, cmd, stdin)
}

// exec runs one command in a new session and returns its stdout; a non-zero
// exit is a *CommandError carrying its stderr.
func (r *remote) exec(ctx context.Context, step, cmd string, stdin io.Reader) (string, error) {
	sess, err := r.client.NewSession()
	if err != nil {
		return "", fmt.Errorf("%w: open SSH session: %v", ErrUnreachable, err)
	}
	defer sess.Close()
	stdout := &capped{max: maxStdout}
	stderr := &capped{max: maxStderr, keepTail: true}
	sess.Stdout, sess.Stderr = stdout, stderr
	if stdin != nil {
		sess.Stdin = stdin
	}
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		<-done
		return "", &CommandError{Step: step, ExitStatus: -1, Stderr: r.clean(stderr.String() + "\n(" + ctx.Err().Error() + ")")}
	}
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return stdout.String(), nil
	case errors.As(err, &exit):
		return "", &CommandError{Step: step, ExitStatus: exit.ExitStatus(), Stderr: r.clean(stderr.String())}
	case errors.As(err, &missing):
		return "", &CommandError{Step: step, ExitStatus: -1, Stderr: r.clean(stderr.String())}
	}
	return "", fmt.Errorf("%w: during %s: %v", ErrUnreachable, step, err)
}

// clean trims, masks secrets in and bounds a command's stderr.
func (r *remote) clean(s string) string {
	return tail(strings.TrimSpace(redact(s, r.secrets...)), shownStderr)
}

// capped is a writer that keeps at most max bytes: the first ones, or with
// keepTail the last ones.
type capped struct {
	mu       sync.Mutex
	max      int
	keepTail bool
	buf      bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if c.keepTail {
		c.buf.Write(p)
		if over := c.buf.Len() - c.max; over > 0 {
			c.buf.Next(over)
		}
		return n, nil
	}
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		c.buf.Write(p)
	}
	return n, nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
