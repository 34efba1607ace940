package phases

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The interval between two checks of waitFor: short at first, since most
// conditions (a port, a certificate, a file) hold within a second or two
// of the action that causes them, then at most pollMax, so a long wait
// does not keep a host's cores busy with probes.
const (
	pollFirst = 100 * time.Millisecond
	pollMax   = 500 * time.Millisecond
)

// waitFor polls check, first every 100ms and then less often (up to every
// 500ms), until it says true, it errs, or the timeout or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	interval := pollFirst
	var last error
	for {
		ok, err := check()
		if err == nil && ok {
			return nil
		}
		var p permanent
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
		interval = min(interval*3/2, pollMax)
	}
}

// permanent is an error waiting will not cure: waitFor returns it at once.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }
