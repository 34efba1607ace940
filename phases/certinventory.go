package phases

import (
	"context"
	"sync"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/host"
)

// certInventoryPhase reads every certificate on a node (the PKI files, the
// client certificates in the kubeconfigs, the kubelet's): certificates
// only, never a key. The command that runs it reports them.
type certInventoryPhase struct {
	env  *Env
	sink func(node string, found []certs.HostCert)
	cas  certs.CAPool
	now  time.Time
	mu   sync.Mutex
}

// NewCertInventory is the certs-inventory phase; sink gets each node's
// certificates (called from several hosts at once, one call each).
func NewCertInventory(env *Env, sink func(node string, found []certs.HostCert)) Phase {
	return &certInventoryPhase{env: env, sink: sink}
}

func (*certInventoryPhase) Title() string  { return "Read every certificate (not the keys)" }
func (*certInventoryPhase) ReadOnly() bool { return true }

func (p *certInventoryPhase) Prepare(context.Context) error {
	cas, err := certs.ReadCAs(p.env.StateDir.PKI())
	if err != nil {
		return err
	}
	p.cas, p.now = cas, time.Now()
	return nil
}

func (p *certInventoryPhase) Run(ctx context.Context, h *host.Host) error {
	out, err := h.Run(ctx, certs.InventoryScript)
	if err != nil {
		return err
	}
	found := certs.ParseInventory(h.Name(), out, p.cas, p.now)
	if p.sink != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.sink(h.Name(), found)
	}
	return nil
}
