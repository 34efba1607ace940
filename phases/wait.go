package phases

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// waitFor polls check every second until it says true, it errs, or the
// timeout or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
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
		case <-time.After(time.Second):
		}
	}
}

// permanent is an error waiting will not cure: waitFor returns it at once.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }
