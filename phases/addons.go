package phases

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/templates"
)

// addonsPhase deploys CoreDNS from the bundle's offline image.
type addonsPhase struct{ env *Env }

func (*addonsPhase) Title() string { return "Add-ons (CoreDNS)" }

func (p *addonsPhase) manifest(upstreams []string) ([]byte, error) {
	img, ok := p.env.Bundle.Image("coredns")
	if !ok {
		return nil, fmt.Errorf("the bundle has no coredns image")
	}
	replicas := 2
	if len(p.env.Cluster.Spec.Hosts) == 1 {
		replicas = 1
	}
	// CoreDNS asks the API at the endpoint (the VIP), not at the
	// kubernetes Service: a pod that starts on a new node before its
	// kube-proxy has the Service's rules sends its first SYN to the
	// ClusterIP un-NATed, conntrack keeps it so, and client-go's dial
	// hangs for its 30 s. CoreDNS starts on just such nodes, in init.
	apiHost, apiPort, err := net.SplitHostPort(p.env.Cluster.Spec.ControlPlane.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("spec.controlPlane.endpoint: %w", err)
	}
	return templates.Render("addons/coredns.yaml.tmpl", map[string]any{
		"DNSDomain":  p.env.Cluster.Spec.Networking.DNSDomain,
		"ClusterDNS": ClusterDNS(p.env.Cluster).String(),
		"Image":      img.Ref,
		"Replicas":   replicas,
		"Upstreams":  strings.Join(upstreams, " "),
		"APIHost":    apiHost,
		"APIPort":    apiPort,
	})
}

// upstreamDNS are the servers CoreDNS forwards other names to: the
// configured ones, else the control plane's reachable resolvers.
func (p *addonsPhase) upstreamDNS(ctx context.Context, h *host.Host) ([]string, error) {
	if u := p.env.Cluster.Spec.Networking.UpstreamDNS; len(u) > 0 {
		return u, nil
	}
	f, err := h.Facts(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range f.Upstreams() {
		out = append(out, a.String())
	}
	return out, nil
}

func (p *addonsPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	upstreams, err := p.upstreamDNS(ctx, h)
	if err != nil {
		return nil, err
	}
	m, err := p.manifest(upstreams)
	if err != nil {
		return nil, err
	}
	return planManifest(ctx, p.env, m)
}

func (p *addonsPhase) Run(ctx context.Context, h *host.Host) error {
	upstreams, err := p.upstreamDNS(ctx, h)
	if err != nil {
		return err
	}
	m, err := p.manifest(upstreams)
	if err != nil {
		return err
	}
	if len(upstreams) == 0 {
		fmt.Fprintf(p.env.Out, "[addons] %s: warning: no upstream DNS (its resolvers are loopback only, and spec.networking.upstreamDNS is empty): pods resolve cluster names only\n", h)
	}
	if err := p.env.Client.Apply(ctx, m); err != nil {
		return err
	}
	if err := p.env.Client.WaitDeployment(ctx, "kube-system", "coredns", 180*time.Second); err != nil {
		return fmt.Errorf("CoreDNS did not become ready: %w (see kubectl -n kube-system describe deployment coredns)", err)
	}
	return nil
}
