package phases

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/templates"
)

// addonsPhase deploys CoreDNS from the bundle's offline image.
type addonsPhase struct{ env *Env }

func (*addonsPhase) Title() string { return "Add-ons (CoreDNS)" }

func (p *addonsPhase) manifest(h *host.Host) ([]byte, error) {
	upstreams := p.upstreamDNS(h)
	img, ok := p.env.Bundle.Image("coredns")
	if !ok {
		return nil, fmt.Errorf("the bundle has no coredns image")
	}
	replicas := 2
	if len(p.env.Cluster.Spec.Hosts) == 1 {
		replicas = 1
	}
	return templates.Render("addons/coredns.yaml.tmpl", map[string]any{
		"DNSDomain":  p.env.Cluster.Spec.Networking.DNSDomain,
		"ClusterDNS": ClusterDNS(p.env.Cluster).String(),
		"Image":      img.Ref,
		"Replicas":   replicas,
		"Upstreams":  strings.Join(upstreams, " "),
	})
}

// upstreamDNS are the servers CoreDNS forwards other names to: the
// configured ones, else the control plane's reachable resolvers.
func (p *addonsPhase) upstreamDNS(h *host.Host) []string {
	if u := p.env.Cluster.Spec.Networking.UpstreamDNS; len(u) > 0 {
		return u
	}
	var out []string
	if h.Facts != nil {
		for _, a := range h.Facts.Upstreams() {
			out = append(out, a.String())
		}
	}
	return out
}

func (p *addonsPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	m, err := p.manifest(h)
	if err != nil {
		return nil, err
	}
	return planManifest(ctx, h, p.env.Cluster.Spec.ControlPlane.Port, m)
}

func (p *addonsPhase) Run(ctx context.Context, h *host.Host) error {
	m, err := p.manifest(h)
	if err != nil {
		return err
	}
	if len(p.upstreamDNS(h)) == 0 {
		fmt.Fprintf(p.env.Out, "[addons] %s: warning: no upstream DNS (its resolvers are loopback only, and spec.networking.upstreamDNS is empty): pods resolve cluster names only\n", h)
	}
	port := p.env.Cluster.Spec.ControlPlane.Port
	if err := applyManifest(ctx, h, port, m); err != nil {
		return err
	}
	if _, err := h.Run(ctx, kubectlLocal(port, "-n kube-system rollout status deployment/coredns --timeout=180s")); err != nil {
		return fmt.Errorf("CoreDNS did not become ready: %w", err)
	}
	return nil
}
