package phases

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// ControlHostFrom returns an Env.ControlHost for SSH runs: the first
// control plane, in file order, that can be reached and whose API server
// is ready, so one control plane down does not stop a join. The choice is
// kept for the run once a ready one is found; until then the first one
// reached is returned (a new cluster's first control plane while it comes
// up).
func ControlHostFrom(pool *Pool, c *config.Cluster) func(context.Context) (*host.Host, error) {
	var (
		mu    sync.Mutex
		ready *host.Host
	)
	return func(ctx context.Context) (*host.Host, error) {
		mu.Lock()
		defer mu.Unlock()
		if ready != nil {
			return ready, nil
		}
		var first *host.Host
		var errs []error
		cps := c.HostsWith(config.RoleControlPlane)
		if len(cps) == 0 {
			return nil, errors.New("the cluster file has no control plane")
		}
		for _, spec := range cps {
			h, err := pool.Get(ctx, spec)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if first == nil {
				first = h
			}
			ok, err := apiReady(ctx, h, c.Spec.ControlPlane.Port)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				ready = h
				return h, nil
			}
		}
		if first != nil {
			return first, nil
		}
		return nil, fmt.Errorf("no control plane can be reached: %w", errors.Join(errs...))
	}
}
