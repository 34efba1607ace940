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

// NodeReadyTimeout bounds the wait for one node.
const NodeReadyTimeout = 3 * time.Minute

func (p *readyPhase) Run(ctx context.Context, h *host.Host) error {
	if p.env.DryRun {
		return nil
	}
	if c := p.env.api(ctx); c != nil {
		err := waitFor(ctx, NodeReadyTimeout, func() (bool, error) {
			node, _, err := getNode(ctx, c, h.Name())
			return node != nil && nodeReady(node), err
		})
		if err != nil {
			return fmt.Errorf("node %s is not Ready: %w (see journalctl -u kubelet -u flanneld on it)", h.Name(), err)
		}
		return p.controllers(ctx, h)
	}
	wait := fmt.Sprintf("wait node/%s --for=condition=Ready --timeout=%s", h.Name(), NodeReadyTimeout)
	ctl, cmd := h, nodeKubectl(wait)
	if p.env.ControlHost != nil {
		var err error
		if ctl, err = p.env.ControlHost(ctx); err != nil {
			return err
		}
		cmd = kubectlLocal(p.env.Cluster.Spec.ControlPlane.Port, wait)
	}
	if _, err := ctl.Run(ctx, cmd); err != nil {
		return fmt.Errorf("node %s is not Ready: %w (see journalctl -u kubelet -u flanneld on it)", h.Name(), err)
	}
	return p.controllers(ctx, h)
}

// controllers waits, on a control plane, for the controller-manager and
// the scheduler to be healthy.
func (p *readyPhase) controllers(ctx context.Context, h *host.Host) error {
	if !h.Spec.Has(config.RoleControlPlane) {
		return nil
	}
	return waitControllers(ctx, h)
}

// NodesTable is `kubectl get nodes -o wide` as the cluster's admin, for
// reports.
func NodesTable(ctx context.Context, env *Env) (string, error) {
	if env.ControlHost == nil {
		return "", fmt.Errorf("no control plane to ask")
	}
	ctl, err := env.ControlHost(ctx)
	if err != nil {
		return "", err
	}
	return ctl.Run(ctx, kubectlLocal(env.Cluster.Spec.ControlPlane.Port, "get nodes -o wide"))
}
