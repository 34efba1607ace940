// Package host is a machine of the cluster as kubeforge drives it: run a
// command (as root, through sudo when the login user is not root), read
// and write files atomically, upload big files once, and the facts
// observed on it. SSH and the local machine are two transports behind one
// interface.
package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"

	"github.com/kubeforge/kubeforge/internal/ssh"
)

// Transport runs commands on a machine and copies files to it.
type Transport interface {
	// Run runs a command line with sh. A non-zero exit is a Result, not
	// an error.
	Run(ctx context.Context, cmd string, stdin io.Reader) (ssh.Result, error)
	// Put writes r to path as the login user (a staging file; Host moves
	// it into place as root).
	Put(ctx context.Context, r io.Reader, path string) error
	// Get copies path, readable by the login user, to w.
	Get(ctx context.Context, path string, w io.Writer) error
	Close() error
}

// sshTransport is a host reached over SSH.
type sshTransport struct{ c *ssh.Client }

func (t sshTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return t.c.Dial(ctx, addr)
}

func (t sshTransport) Run(ctx context.Context, cmd string, stdin io.Reader) (ssh.Result, error) {
	return t.c.Run(ctx, cmd, stdin)
}

// Put uses SFTP when the host offers it and streams through cat when not.
func (t sshTransport) Get(ctx context.Context, path string, w io.Writer) error {
	if s, err := t.c.SFTP(); err == nil {
		f, err := s.Open(path)
		if err != nil {
			return fmt.Errorf("sftp open %s: %w", path, err)
		}
		done := context.AfterFunc(ctx, func() { f.Close() })
		_, err = f.WriteTo(w)
		done()
		f.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	res, err := t.c.Run(ctx, "cat "+quote(path), nil)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("cat %s: exit %d: %s", path, res.ExitCode, res.Stderr)
	}
	_, err = w.Write(res.Stdout)
	return err
}

func (t sshTransport) Put(ctx context.Context, r io.Reader, path string) error {
	if s, err := t.c.SFTP(); err == nil {
		f, err := s.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("sftp create %s: %w", path, err)
		}
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("sftp chmod %s: %w", path, err)
		}
		done := context.AfterFunc(ctx, func() { f.Close() })
		_, err = f.ReadFrom(r)
		done()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("sftp write %s: %w", path, err)
		}
		return nil
	}
	res, err := t.c.Run(ctx, "umask 077 && cat > "+quote(path), r)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("write %s: %s", path, bytes.TrimSpace(res.Stderr))
	}
	return nil
}

func (t sshTransport) Close() error { return t.c.Close() }

// localTransport is the machine kubeforge runs on.
type localTransport struct{}

func (localTransport) Run(ctx context.Context, cmd string, stdin io.Reader) (ssh.Result, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr, c.Stdin = &stdout, &stderr, stdin
	err := c.Run()
	res := ssh.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if exit, ok := err.(*exec.ExitError); ok {
		res.ExitCode = exit.ExitCode()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, nil
	}
	return res, err
}

func (localTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("%s: %w", addr, ErrNotListening)
	}
	return conn, err
}

// ErrNotListening: nothing accepts connections at the address a Dial
// asked for, as seen from the host.
var ErrNotListening = ssh.ErrNotListening

func (localTransport) Get(_ context.Context, path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func (localTransport) Put(ctx context.Context, r io.Reader, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (localTransport) Close() error { return nil }
