package host

import (
	"errors"
	"fmt"
)

// Error is something that went wrong on one host. Its message starts with
// the host's label, so a user knows where to look.
type Error struct {
	Name  string // the host's name in the cluster file
	Label string // "lab2 (172.30.0.12)"
	Err   error
}

func (e *Error) Error() string    { return "host " + e.Label + ": " + e.Err.Error() }
func (e *Error) Unwrap() error    { return e.Err }
func (e *Error) HostName() string { return e.Name }

// Errorf makes an error about this host.
func (h *Host) Errorf(format string, args ...any) error {
	return &Error{Name: h.Spec.Name, Label: h.String(), Err: fmt.Errorf(format, args...)}
}

// Wrap names this host in err, unless err already names it.
func (h *Host) Wrap(err error) error {
	if err == nil || Names(err, h.Spec.Name) {
		return err
	}
	return &Error{Name: h.Spec.Name, Label: h.String(), Err: err}
}

// Names reports whether err says which host it is about, and that host is
// name: the errors of this package and of the SSH transport do.
func Names(err error, name string) bool {
	var n interface{ HostName() string }
	return errors.As(err, &n) && n.HostName() == name
}
