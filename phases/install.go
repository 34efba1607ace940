package phases

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kubeforge/kubeforge/internal/host"
)

// installPhase links the programs of the current bundle into place:
// /usr/local/bin/kube and a symlink per component (kubelet -> kube...),
// flanneld, crictl, and the CNI plugins in /opt/cni/bin. The runtime and
// keepalived run from the bundle itself (offPath).
type installPhase struct{ env *Env }

// offPath are the bundle's programs that its units run by their bundle
// path and that are never linked onto PATH: on a node that keeps the OS's
// containerd, its runc and ctr must stay the OS's.
var offPath = map[string]bool{"containerd": true, "containerd-shim-runc-v2": true, "ctr": true, "runc": true, "keepalived": true}

func (*installPhase) Title() string { return "Install the components" }

// links returns link -> target.
func (p *installPhase) links() map[string]string {
	cur := CurrentBundle()
	out := map[string]string{}
	for _, f := range p.env.Bundle.Files {
		target := path.Join(cur, f.Path)
		switch {
		case offPath[path.Base(f.Path)]: // run from the bundle
		case strings.HasPrefix(f.Path, "cni/bin/"):
			out[path.Join(CNIBinDir, path.Base(f.Path))] = target
		case len(f.Programs) > 1: // the multicall binary: itself, and a link per program
			out[bin(path.Base(f.Path))] = target
			for _, prog := range f.Programs {
				out[bin(prog.Name)] = path.Base(f.Path)
			}
		default:
			out[bin(path.Base(f.Path))] = target
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// wrongLinks lists the links that are missing or point elsewhere.
func (p *installPhase) wrongLinks(ctx context.Context, h *host.Host, links map[string]string) ([]string, error) {
	keys := sortedKeys(links)
	var script strings.Builder
	for _, l := range keys {
		fmt.Fprintf(&script, "readlink %s || echo -\n", host.Quote(l))
	}
	out, err := h.Run(ctx, script.String())
	if err != nil {
		return nil, err
	}
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var wrong []string
	for i, l := range keys {
		if i >= len(got) || got[i] != links[l] {
			wrong = append(wrong, l)
		}
	}
	return wrong, nil
}

func (p *installPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	links := p.links()
	wrong, err := p.wrongLinks(ctx, h, links)
	if err != nil {
		return nil, err
	}
	var plan []string
	for _, l := range wrong {
		plan = append(plan, "link "+l+" -> "+links[l])
	}
	return plan, nil
}

func (p *installPhase) Run(ctx context.Context, h *host.Host) error {
	links := p.links()
	wrong, err := p.wrongLinks(ctx, h, links)
	if err != nil || len(wrong) == 0 {
		return err
	}
	var script strings.Builder
	fmt.Fprintf(&script, "set -e\nmkdir -p %s %s\n", BinDir, CNIBinDir)
	for _, l := range wrong {
		// A new link beside the old, renamed over it: never a moment
		// without the command.
		fmt.Fprintf(&script, "ln -sfn %[1]s %[2]s.kubeforge-new && mv -Tf %[2]s.kubeforge-new %[2]s\n", host.Quote(links[l]), host.Quote(l))
	}
	_, err = h.Run(ctx, script.String())
	return err
}
