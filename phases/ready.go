package phases

import (
	"context"
	"fmt"
	"time"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// readyPhase waits until each node is Ready (its kubelet runs pods and
// the pod network is up on it) and, on a control plane, until the
// controller-manager and the scheduler are healthy.
type readyPhase struct{ env *Env }

func (*readyPhase) Title() string  { return "Wait for the nodes to be Ready" }
func (*readyPhase) ReadOnly() bool { return true }
func (*readyPhase) Waits() bool    { return true }

// NodeReadyTimeout bounds the wait for one node.
const NodeReadyTimeout = 3 * time.Minute

func (p *readyPhase) Run(ctx context.Context, h *host.Host) error {
	if p.env.DryRun {
		return nil
	}
	if err := p.env.Client.WaitNodeReady(ctx, h.Name(), NodeReadyTimeout); err != nil {
		return fmt.Errorf("node %s is not Ready: %w (see journalctl -u kubelet -u flanneld on it)", h.Name(), err)
	}
	if !h.Spec.Has(config.RoleControlPlane) {
		return nil
	}
	return p.env.Client.WaitControllers(ctx, h, 2*time.Minute)
}

// NodesTable is the nodes as `kubectl get nodes -o wide` shows them, for
// reports.
func NodesTable(ctx context.Context, env *Env) (string, error) {
	if !env.Client.Admin() {
		return "", fmt.Errorf("no control plane to ask")
	}
	return env.Client.NodesTable(ctx)
}
