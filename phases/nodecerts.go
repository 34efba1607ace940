package phases

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/atomicfile"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// nodeCertsPhase is the certs step of a machine joining on its own: its
// state directory (on the machine) gets the cluster CA it pinned and, for
// a control plane, the CAs fetched from the cluster, from which it issues
// its own certificates and kubeconfigs.
type nodeCertsPhase struct {
	env    *Env
	node   string
	caPEM  []byte
	shared map[string][]byte // nil for a worker, or a control plane re-run
}

// NewNodeCerts is the certs phase of `kubeforge join ENDPOINT`.
func NewNodeCerts(env *Env, node string, caPEM []byte, shared map[string][]byte) Phase {
	return &nodeCertsPhase{env: env, node: node, caPEM: caPEM, shared: shared}
}

func (*nodeCertsPhase) Title() string { return "Certificates of this node (in its state directory)" }

func (p *nodeCertsPhase) Prepare(context.Context) error {
	caFile := p.env.StateDir.CACert()
	if have, err := os.ReadFile(caFile); err == nil && !bytes.Equal(have, p.caPEM) {
		return fmt.Errorf("%s holds another cluster's CA: this machine was set up for another cluster; reset it first", caFile)
	}
	if p.env.DryRun {
		return nil
	}
	if err := atomicfile.Write(caFile, p.caPEM, 0o644, 0o700); err != nil {
		return err
	}
	spec := p.env.Cluster.Host(p.node)
	if spec == nil || !spec.Has(config.RoleControlPlane) {
		return nil
	}
	dir := p.env.StateDir.PKI()
	if p.shared != nil {
		if err := certs.WriteShared(dir, p.shared); err != nil {
			return err
		}
	}
	results, err := certs.Generate(p.env.PKI.ForNode(p.node), dir, certs.Options{})
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Action != certs.Kept {
			fmt.Fprintf(p.env.Out, "[certs] %s %s\n", r.Name, r.Action)
		}
	}
	return nil
}

func (*nodeCertsPhase) Run(context.Context, *host.Host) error { return nil }
func (*nodeCertsPhase) Plan(context.Context, *host.Host) ([]string, error) {
	return nil, nil
}
