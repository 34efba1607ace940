// Package ssh is kubeforge's SSH transport: one connection per host, host
// keys checked against the cluster's known_hosts, key / agent / password
// authentication, an optional bastion, keepalives, commands with context
// cancellation, and SFTP when the host offers it.
package ssh

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pkg/sftp"
	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Config is how to reach one host.
type Config struct {
	Host string // the host's name in the cluster file, for messages
	Addr string // address or DNS name
	Port int
	User string
	// KeyPath is a private key file. Passphrase is asked when it is
	// encrypted.
	KeyPath    string
	Passphrase func(keyPath string) ([]byte, error)
	// Password for password authentication.
	Password string
	// AgentSocket is $SSH_AUTH_SOCK, used when set.
	AgentSocket string
	// Bastion is a jump host to connect through.
	Bastion *Config
	// ConnectTimeout bounds the TCP connect and the SSH handshake.
	ConnectTimeout time.Duration
	// Keepalive is the interval of keepalive requests (0: 15s).
	Keepalive  time.Duration
	KnownHosts *KnownHosts
}

// Client is a connection to one host.
type Client struct {
	cfg     Config
	client  *xssh.Client
	bastion *Client
	agent   net.Conn
	stop    chan struct{}

	sftpOnce sync.Once
	sftp     *sftp.Client
	sftpErr  error

	// sessions bounds the commands running at once on the connection:
	// sshd refuses more than MaxSessions (10 by default) open sessions
	// per connection ("open failed"), SFTP's one included, and steps
	// that overlap can run more than that on one control plane.
	sessions chan struct{}
}

// maxSessions is below sshd's default MaxSessions (10), with room for
// the SFTP subsystem's session.
const maxSessions = 8

// ConnectError is a failure to reach or log in to a host.
type ConnectError struct {
	Host, Addr string
	Err        error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("host %s (%s): %v", e.Host, e.Addr, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// HostName is the host's name in the cluster file.
func (e *ConnectError) HostName() string { return e.Host }

// Dial connects and authenticates.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 15 * time.Second
	}
	addr := net.JoinHostPort(cfg.Addr, strconv.Itoa(cfg.Port))
	c := &Client{cfg: cfg, stop: make(chan struct{}), sessions: make(chan struct{}, maxSessions)}
	wrap := func(err error) error { return &ConnectError{Host: cfg.Host, Addr: addr, Err: err} }

	auth, agentConn, err := authMethods(cfg)
	if err != nil {
		return nil, wrap(err)
	}
	c.agent = agentConn
	if cfg.KnownHosts == nil {
		return nil, wrap(errors.New("no known_hosts: host keys must be checked"))
	}
	clientCfg := &xssh.ClientConfig{
		User:            cfg.User,
		Auth:            auth,
		HostKeyCallback: cfg.KnownHosts.Callback(cfg.Host),
		Timeout:         cfg.ConnectTimeout,
	}

	var conn net.Conn
	if cfg.Bastion != nil {
		b := *cfg.Bastion
		b.KnownHosts = cfg.KnownHosts
		if c.bastion, err = Dial(ctx, b); err != nil {
			c.Close()
			return nil, wrap(fmt.Errorf("bastion: %w", err))
		}
		conn, err = c.bastion.client.DialContext(ctx, "tcp", addr)
	} else {
		d := net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		c.Close()
		return nil, wrap(err)
	}
	// The handshake obeys both the timeout and ctx.
	deadline := time.Now().Add(cfg.ConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stopWatch := context.AfterFunc(ctx, func() { conn.Close() })
	sshConn, chans, reqs, err := xssh.NewClientConn(conn, addr, clientCfg)
	stopWatch()
	if err != nil {
		conn.Close()
		c.Close()
		var changed *HostKeyChangedError
		if errors.As(err, &changed) {
			return nil, changed
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, wrap(err)
	}
	_ = conn.SetDeadline(time.Time{})
	c.client = xssh.NewClient(sshConn, chans, reqs)
	go c.keepalive()
	return c, nil
}

func authMethods(cfg Config) ([]xssh.AuthMethod, net.Conn, error) {
	var methods []xssh.AuthMethod
	if cfg.KeyPath != "" {
		signer, err := loadKey(cfg.KeyPath, cfg.Passphrase)
		if err != nil {
			return nil, nil, err
		}
		methods = append(methods, xssh.PublicKeys(signer))
	}
	var agentConn net.Conn
	if cfg.AgentSocket != "" && cfg.KeyPath == "" {
		conn, err := net.Dial("unix", cfg.AgentSocket)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh-agent at %s: %w", cfg.AgentSocket, err)
		}
		agentConn = conn
		methods = append(methods, xssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		methods = append(methods, xssh.Password(pw),
			xssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	if len(methods) == 0 {
		return nil, nil, errors.New("no way to log in: set ssh.keyPath, run an ssh-agent (SSH_AUTH_SOCK) or set ssh.passwordEnv")
	}
	return methods, agentConn, nil
}

func loadKey(path string, passphrase func(string) ([]byte, error)) (xssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	signer, err := xssh.ParsePrivateKey(data)
	var missing *xssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("ssh key %s is encrypted: set ssh.passphraseEnv or run kubeforge on a terminal", path)
		}
		pass, perr := passphrase(path)
		if perr != nil {
			return nil, fmt.Errorf("ssh key %s: %w", path, perr)
		}
		signer, err = xssh.ParsePrivateKeyWithPassphrase(data, pass)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("ssh key %s: wrong passphrase", path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", path, err)
	}
	return signer, nil
}

// keepalive pings the server; three unanswered pings close the
// connection so commands fail instead of hanging.
func (c *Client) keepalive() {
	t := time.NewTicker(c.cfg.Keepalive)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			done := make(chan error, 1)
			go func() {
				_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					missed++
				} else {
					missed = 0
				}
			case <-time.After(c.cfg.Keepalive):
				missed++
			case <-c.stop:
				return
			}
			if missed >= 3 {
				c.client.Close()
				return
			}
		}
	}
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// Run runs a command line with the login shell and waits for it. A
// non-zero exit is a Result with ExitCode set, not an error; errors are
// transport failures and cancellation.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	select {
	case c.sessions <- struct{}{}:
		defer func() { <-c.sessions }()
	case <-ctx.Done():
		return Result{ExitCode: -1}, ctx.Err()
	}
	session, err := c.client.NewSession()
	if err != nil {
		return Result{}, fmt.Errorf("new session: %w", err)
	}
	var stdout, stderr bytes.Buffer
	session.Stdout, session.Stderr = &stdout, &stderr
	// Input is written to the channel here, in large writes, not through
	// the session's own io.Pipe and its goroutine: for the bundle's 91 MB
	// that pipe woke a goroutine for every 32 KB and copied every byte
	// once more, the largest share of what a join cost this machine.
	var stdinPipe io.WriteCloser
	if stdin != nil {
		if stdinPipe, err = session.StdinPipe(); err != nil {
			session.Close()
			return Result{}, fmt.Errorf("stdin: %w", err)
		}
	}
	if err := session.Start(cmd); err != nil {
		session.Close()
		return Result{}, fmt.Errorf("start: %w", err)
	}
	fed := make(chan struct{})
	if stdinPipe != nil {
		go func() {
			defer close(fed)
			// Not io.Copy: *os.File's WriteTo would read 32 KB at a time.
			_, _ = io.CopyBuffer(stdinPipe, struct{ io.Reader }{stdin}, make([]byte, 256<<10))
			stdinPipe.Close() // EOF; a write error means the command is gone
		}()
	} else {
		close(fed)
	}
	// Closing the session ends a feed the command stopped reading: the
	// caller's reader is not read once Run has returned.
	defer func() { session.Close(); <-fed }()
	done := make(chan error, 1)
	go func() { done <- session.Wait() }()
	select {
	case <-ctx.Done():
		_ = session.Signal(xssh.SIGKILL)
		session.Close()
		<-done
		return Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1}, ctx.Err()
	case err = <-done:
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exit *xssh.ExitError
	var missing *xssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitStatus()
	case errors.As(err, &missing):
		res.ExitCode = -1
		return res, errors.New("the connection closed before the command exited")
	default:
		return res, err
	}
	return res, nil
}

// Dial opens a TCP connection from the host, through the SSH connection
// (sshd's direct-tcpip): what a port on the host's loopback answers,
// without that port being reachable from here. When sshd does not forward
// (AllowTcpForwarding no), a relay command on the host carries the
// connection instead. Nothing listening there is ErrNotListening.
func (c *Client) Dial(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := c.client.Dial("tcp", addr)
		done <- result{conn, err}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			return r.conn, nil
		}
		err := dialError(addr, r.err)
		if errors.Is(err, errForwardingOff) {
			return c.dialThroughCommand(ctx, addr)
		}
		return nil, err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// SFTP returns the host's SFTP client, or an error when the host offers
// no sftp subsystem (callers then stream files through a command).
func (c *Client) SFTP() (*sftp.Client, error) {
	c.sftpOnce.Do(func() {
		c.sftp, c.sftpErr = sftp.NewClient(c.client, sftp.UseConcurrentWrites(true))
	})
	return c.sftp, c.sftpErr
}

// PresentedKey connects only far enough to see the host key the host
// presents, without checking or recording it.
func PresentedKey(ctx context.Context, cfg Config) (xssh.PublicKey, error) {
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	addr := net.JoinHostPort(cfg.Addr, strconv.Itoa(cfg.Port))
	var key xssh.PublicKey
	errSeen := errors.New("seen")
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &ConnectError{Host: cfg.Host, Addr: addr, Err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _, _, err = xssh.NewClientConn(conn, addr, &xssh.ClientConfig{
		User: cfg.User,
		HostKeyCallback: func(_ string, _ net.Addr, k xssh.PublicKey) error {
			key = k
			return errSeen
		},
	})
	if key == nil {
		return nil, &ConnectError{Host: cfg.Host, Addr: addr, Err: err}
	}
	return key, nil
}

// Close ends the connection (and the bastion's).
func (c *Client) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	var err error
	if c.sftp != nil {
		c.sftp.Close()
	}
	if c.client != nil {
		err = c.client.Close()
	}
	if c.bastion != nil {
		c.bastion.Close()
	}
	if c.agent != nil {
		c.agent.Close()
	}
	return err
}
