package phases

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/host"
)

// finishPhase waits until every node is Ready and tells the user how to
// use the cluster and add nodes.
type finishPhase struct{ env *Env }

func (*finishPhase) Title() string  { return "Wait for the nodes and report" }
func (*finishPhase) ReadOnly() bool { return true }

func (p *finishPhase) Run(ctx context.Context, h *host.Host) error {
	port := p.env.Cluster.Spec.ControlPlane.Port
	if p.env.DryRun {
		return nil
	}
	if _, err := h.Run(ctx, kubectlLocal(port, "wait node --all --for=condition=Ready --timeout=180s")); err != nil {
		out, _ := h.Run(ctx, kubectlLocal(port, "get nodes -o wide")+" || true")
		return fmt.Errorf("nodes not Ready: %w\n%s", err, out)
	}
	nodes, err := h.Run(ctx, kubectlLocal(port, "get nodes -o wide"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(p.env.StateDir, "pki", "ca.crt"))
	if err != nil {
		return err
	}
	hash, err := CACertHash(caPEM)
	if err != nil {
		return err
	}
	admin := filepath.Join(p.env.StateDir, certs.AdminConf)
	fmt.Fprintf(p.env.Out, `
Your Kubernetes cluster %q is up.

%s
Use it with the bundled kubectl, or any kubectl v1.34-1.36:
  kubeforge kubectl -f <cluster file> -- get pods -A
  export KUBECONFIG=%s

To add hosts, list them in the cluster file and run init again: it changes
only what is missing. A node can also join with the bootstrap token
(valid until %s):
  kubeforge join %s --token %s --discovery-token-ca-cert-hash %s
`, p.env.Cluster.Metadata.Name, strings.TrimRight(nodes, "\n")+"\n", admin,
		p.env.Token.Expires.Format("2006-01-02 15:04 MST"), p.env.Cluster.Spec.ControlPlane.Endpoint, p.env.Token, hash)
	return nil
}
