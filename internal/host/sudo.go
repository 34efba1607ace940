package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// sudo is how commands get root on a host.
type sudo struct {
	mode     sudoMode
	password []byte
}

type sudoMode int

const (
	asRoot       sudoMode = iota // the login user is root
	sudoNoPasswd                 // sudo -n works
	sudoPassword                 // sudo needs the password, fed on stdin
)

// SudoError is a login user that cannot become root.
type SudoError struct {
	Name, Host, User, Reason string
}

func (e *SudoError) HostName() string { return e.Name }

func (e *SudoError) Error() string {
	return fmt.Sprintf("host %s: user %s cannot run commands as root: %s", e.Host, e.User, e.Reason)
}

// wrap turns a command into the line to run and its standard input. The
// sudo password never appears in the command line: it is the first line
// of stdin, and -k makes sudo always read it, so it never leaks into the
// command's input.
func (s sudo) wrap(cmd string, stdin io.Reader) (string, io.Reader) {
	switch s.mode {
	case sudoNoPasswd:
		return "sudo -n -- sh -c " + quote(cmd), stdin
	case sudoPassword:
		var input io.Reader = bytes.NewReader(append(append([]byte(nil), s.password...), '\n'))
		if stdin != nil {
			input = io.MultiReader(input, stdin)
		}
		return "sudo -k -S -p '' -- sh -c " + quote(cmd), input
	default:
		return cmd, stdin
	}
}

// scrub removes sudo's own noise from a command's stderr.
func (s sudo) scrub(stderr string) string {
	if s.mode != sudoPassword {
		return stderr
	}
	return strings.TrimPrefix(stderr, "\n")
}

// detectSudo finds how the login user becomes root: already root, sudo
// without a password, or sudo with the given password (checked here, so a
// wrong one is one clear error before any step runs).
func (h *Host) detectSudo(ctx context.Context, user string, password []byte) error {
	res, err := h.t.Run(ctx, "id -u", nil)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(res.Stdout)) == "0" {
		h.sudo = sudo{mode: asRoot}
		return nil
	}
	if res, err := h.t.Run(ctx, "sudo -n true", nil); err != nil {
		return err
	} else if res.ExitCode == 0 {
		h.sudo = sudo{mode: sudoNoPasswd}
		return nil
	}
	if len(password) == 0 {
		return &SudoError{Name: h.Spec.Name, Host: h.String(), User: user, Reason: "sudo asks for a password: set ssh.sudoPasswordEnv to the name of an environment variable holding it, or allow NOPASSWD"}
	}
	h.sudo = sudo{mode: sudoPassword, password: password}
	out, err := h.Run(ctx, "id -u")
	var ce *CommandError
	if errors.As(err, &ce) {
		reason := "the sudo password was refused"
		if strings.Contains(ce.Stderr, "not in the sudoers") || strings.Contains(ce.Stderr, "not allowed") {
			reason = "it is not allowed to use sudo"
		}
		h.sudo = sudo{}
		return &SudoError{Name: h.Spec.Name, Host: h.String(), User: user, Reason: reason + " (" + strings.TrimSpace(ce.Stderr) + ")"}
	}
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "0" {
		return &SudoError{Name: h.Spec.Name, Host: h.String(), User: user, Reason: "sudo did not give root"}
	}
	return nil
}
