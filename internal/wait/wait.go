// Package wait polls a condition until it holds: the one way kubeforge
// waits for a host, a component or the cluster.
package wait

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The interval between two checks: short at first, since most conditions
// (a port, a certificate, a file) hold within a second or two of the
// action that causes them, then at most PollMax, so a long wait does not
// keep a host's cores busy with probes.
const (
	PollFirst = 100 * time.Millisecond
	PollMax   = 500 * time.Millisecond
)

// For polls check, first every 100ms and then less often (up to every
// 500ms), until it says true, it returns a Permanent error, or the timeout
// or ctx ends. Other errors mean "not yet": the last one is in the
// timeout's error.
func For(ctx context.Context, timeout time.Duration, check func() (bool, error)) error {
	return poll(ctx, timeout, PollFirst, PollMax, check)
}

// Every is For at a fixed interval, for a condition that changes on a
// known period and whose check is not cheap (a component's metrics, read
// whole, of something that reloads once a minute).
func Every(ctx context.Context, timeout, interval time.Duration, check func() (bool, error)) error {
	return poll(ctx, timeout, interval, interval, check)
}

func poll(ctx context.Context, timeout, interval, most time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := check()
		if err == nil && ok {
			return nil
		}
		var p *permanentError
		if errors.As(err, &p) {
			return p.err
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("timed out after %s: %w", timeout, last)
			}
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		interval = min(interval*3/2, most)
	}
}

// Permanent marks an error waiting will not cure: For returns it at once.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }
