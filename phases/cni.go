package phases

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
	"github.com/kubeforge/kubeforge/templates"
)

// cniPhase runs flanneld (Kubernetes subnet manager: each node's pod
// subnet is its spec.podCIDR), as the node itself (NodeKubeconfig). The
// flannel CNI configuration is the kubelet phase's: it is there before
// the kubelet starts.
type cniPhase struct{ env *Env }

func (*cniPhase) Title() string { return "Pod network (flannel)" }

const (
	flannelConflist = CNIConfDir + "/10-flannel.conflist"
	flannelNetConf  = FlannelDir + "/net-conf.json"
	flannelSubnet   = "/run/flannel/subnet.env"
)

func (p *cniPhase) desired(h *host.Host) (Desired, error) {
	n := p.env.Cluster.Spec.Networking
	netConf, err := templates.Render("cni/net-conf.json.tmpl", map[string]string{"PodCIDR": n.PodCIDR, "Backend": n.Backend})
	if err != nil {
		return Desired{}, err
	}
	files := []File{{Path: flannelNetConf, Data: netConf, Mode: host.FileMode{Perm: 0o644}}}
	u, err := unit{
		Description:   "flanneld: the pod network between nodes",
		Documentation: "https://github.com/flannel-io/flannel",
		After:         []string{"network-online.target", "kubelet.service"},
		Wants:         []string{"network-online.target"},
		// Not notify: flanneld tells systemd it is ready only once it has
		// its lease from the API server, so a node booting while no API
		// server answers would sit in "starting" (boot not finished) for
		// the 90 s start timeout, and then have flanneld killed. The
		// step waits for the lease itself (subnet.env, below).
		Type:        "simple",
		Environment: []string{"NODE_NAME=" + h.Name(), "KUBEFORGE_BINARY=" + binaryID(p.env, "flanneld")},
		Exec:        bin("flanneld"),
		Args: []string{
			"--kube-subnet-mgr",
			"--kubeconfig-file=" + NodeKubeconfig,
			"--net-config-path=" + flannelNetConf,
			"--iface=" + h.Spec.ClusterAddress().String(),
			"--ip-masq",
		},
	}.render()
	if err != nil {
		return Desired{}, err
	}
	return Desired{Files: files, Services: []Service{{Name: "flanneld", Unit: u, Inputs: []string{flannelNetConf}}}}, nil
}

func (p *cniPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	d, err := p.desired(h)
	if err != nil {
		return nil, err
	}
	return d.Plan(ctx, h)
}

func (p *cniPhase) Run(ctx context.Context, h *host.Host) error {
	d, err := p.desired(h)
	if err != nil {
		return err
	}
	if _, err := d.Apply(ctx, h); err != nil {
		return err
	}
	// Another network's configuration sorting before ours would win.
	others, err := h.Run(ctx, "ls -1 "+CNIConfDir+" 2>/dev/null | grep -v '^"+path.Base(flannelConflist)+"$' || true")
	if err != nil {
		return err
	}
	if o := strings.Fields(others); len(o) > 0 {
		fmt.Fprintf(p.env.Out, "[cni] %s: warning: %s also holds %s; the container runtime uses the first file in name order\n",
			h, CNIConfDir, strings.Join(o, ", "))
	}
	if err := wait.For(ctx, 2*time.Minute, func() (bool, error) { return h.Check(ctx, "[ -s "+flannelSubnet+" ]") }); err != nil {
		return fmt.Errorf("flanneld did not write %s: %w (see journalctl -u flanneld)", flannelSubnet, err)
	}
	return nil
}
