package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/discovery"
	"github.com/kubeforge/kubeforge/internal/ssh"
	"github.com/kubeforge/kubeforge/phases"
)

// Exit codes. Every error reaching Main is turned into a message and one of
// these here, and nowhere else.
const (
	ExitOK       = 0
	ExitFailure  = 1 // the operation failed, or a check found a problem
	ExitUsage    = 2 // bad flags or arguments: nothing was done
	ExitInvalid  = 3 // the cluster file or another input is invalid, or the change was refused: nothing was done
	ExitCanceled = 130
)

// usageError marks a mistake in the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// inputError is an input the cluster refused or that cannot be right (a
// wrong token, CA hash or certificate key): nothing was done.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

// exitCoder is implemented by errors that carry their own exit code, such
// as "certificates expire soon" from a check.
type exitCoder interface{ ExitCode() int }

// silentError is implemented by errors whose report was already printed
// (a check's table): only the exit code remains to give.
type silentError interface{ Silent() bool }

// handleError prints err for the user and returns the exit code.
func handleError(w io.Writer, log *slog.Logger, err error) int {
	if err == nil {
		return ExitOK
	}
	if log != nil {
		log.Debug("exit", "error", err)
	}
	code := exitCode(err)
	var s silentError
	if errors.As(err, &s) && s.Silent() {
		return code
	}
	fmt.Fprintln(w, "Error:", err)
	if changed := hostKeyChanges(err); len(changed) > 0 {
		fmt.Fprintln(w, "After checking each key on its host, accept it with:")
		for _, c := range changed {
			fmt.Fprintf(w, "  kubeforge known-hosts accept %s --fingerprint %s -f <cluster file>\n", c.Host, c.Presented)
		}
	}
	if code == ExitUsage {
		fmt.Fprintln(w, "Run 'kubeforge --help' or add --help to the command for usage.")
	}
	return code
}

func exitCode(err error) int {
	var (
		usage   usageError
		input   inputError
		refused *discovery.Error
		coder   exitCoder
		invalid *config.InvalidError
		badFile *certs.FileError
		refusal *phases.RefusalError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return ExitCanceled
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &invalid), errors.As(err, &badFile), errors.As(err, &input), errors.As(err, &refusal):
		return ExitInvalid
	case errors.As(err, &refused) && refused.Reason != discovery.Unreachable:
		return ExitInvalid
	case errors.As(err, &coder):
		return coder.ExitCode()
	default:
		return ExitFailure
	}
}

// hostKeyChanges finds every changed host key in an error tree (a step's
// per-host errors are aggregated).
func hostKeyChanges(err error) []*ssh.HostKeyChangedError {
	var out []*ssh.HostKeyChangedError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if c, ok := e.(*ssh.HostKeyChangedError); ok {
			out = append(out, c)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ WrappedErrors() []error }:
			for _, x := range u.WrappedErrors() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}
