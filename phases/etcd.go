package phases

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// etcdPhase runs etcd on the etcd hosts: TLS between clients and peers,
// a 0700 data directory, and waits until the member is healthy.
type etcdPhase struct{ env *Env }

func (*etcdPhase) Title() string { return "etcd" }

func etcdURL(addr netip.Addr, port int) string {
	return "https://" + netip.AddrPortFrom(addr, uint16(port)).String()
}

// etcdEndpoints are the client URLs of every member.
func etcdEndpoints(c *config.Cluster) string {
	var eps []string
	for _, h := range c.HostsWith(config.RoleEtcd) {
		eps = append(eps, etcdURL(h.ClusterAddress(), EtcdClientPort))
	}
	return strings.Join(eps, ",")
}

func (p *etcdPhase) desired(h *host.Host) (Desired, error) {
	node := path.Join(certs.NodesDir, h.Name(), certs.PKIDir, "etcd")
	etcdDir := pki("etcd")
	files, err := p.env.pkiFiles(append(append(append(
		[]string{"pki/etcd/ca.crt", pki("etcd/ca.crt")},
		pair(node, etcdDir, "server")...),
		pair(node, etcdDir, "peer")...),
		pair("pki/etcd", etcdDir, "healthcheck-client")...)...)
	if err != nil {
		return Desired{}, err
	}
	ip := h.Spec.ClusterAddress()
	var initial []string
	for _, m := range p.env.Cluster.HostsWith(config.RoleEtcd) {
		initial = append(initial, m.Name+"="+etcdURL(m.ClusterAddress(), EtcdPeerPort))
	}
	args := flags(map[string]string{
		"name":                           h.Name(),
		"data-dir":                       EtcdDataDir,
		"listen-client-urls":             etcdURL(netip.MustParseAddr("127.0.0.1"), EtcdClientPort) + "," + etcdURL(ip, EtcdClientPort),
		"advertise-client-urls":          etcdURL(ip, EtcdClientPort),
		"listen-peer-urls":               etcdURL(ip, EtcdPeerPort),
		"initial-advertise-peer-urls":    etcdURL(ip, EtcdPeerPort),
		"initial-cluster":                strings.Join(initial, ","),
		"initial-cluster-state":          "new",
		"initial-cluster-token":          "kubeforge-" + p.env.Cluster.Metadata.Name,
		"listen-metrics-urls":            fmt.Sprintf("http://127.0.0.1:%d", EtcdMetricsPort),
		"client-cert-auth":               "true",
		"trusted-ca-file":                pki("etcd/ca.crt"),
		"cert-file":                      pki("etcd/server.crt"),
		"key-file":                       pki("etcd/server.key"),
		"peer-client-cert-auth":          "true",
		"peer-trusted-ca-file":           pki("etcd/ca.crt"),
		"peer-cert-file":                 pki("etcd/peer.crt"),
		"peer-key-file":                  pki("etcd/peer.key"),
		"snapshot-count":                 "10000",
		"watch-progress-notify-interval": "5s",
	})
	u, err := unit{
		Description:   "etcd: the Kubernetes cluster's key-value store",
		Documentation: "https://etcd.io/docs/v3.6/",
		After:         []string{"network-online.target"},
		Wants:         []string{"network-online.target"},
		Type:          "notify",
		Environment:   []string{"KUBEFORGE_BINARY=" + binaryID(p.env, "etcd")},
		ExecStartPre:  []string{"/bin/mkdir -p -m 0700 " + EtcdDataDir, "/bin/chmod 0700 " + EtcdDataDir},
		Exec:          bin("etcd"),
		Args:          args,
		LimitNOFILE:   65536,
	}.render()
	if err != nil {
		return Desired{}, err
	}
	return Desired{Files: files, Services: []Service{{Name: "etcd", Unit: u, Inputs: paths(files)}}}, nil
}

func (p *etcdPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	d, err := p.desired(h)
	if err != nil {
		return nil, err
	}
	return d.Plan(ctx, h)
}

func (p *etcdPhase) Run(ctx context.Context, h *host.Host) error {
	d, err := p.desired(h)
	if err != nil {
		return err
	}
	if _, err := d.Apply(ctx, h); err != nil {
		return err
	}
	// A new cluster's members wait for each other: the health wait covers
	// the time the others take to start.
	health := etcdctl("endpoint health")
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) { return h.Check(ctx, health) }); err != nil {
		out, _ := h.Run(ctx, health+" 2>&1 || true")
		return fmt.Errorf("etcd is not healthy: %w: %s (see journalctl -u etcd)", err, strings.TrimSpace(out))
	}
	return nil
}

// etcdctl runs the bundled etcdctl against the local member with the
// healthcheck client certificate.
func etcdctl(args string) string {
	return fmt.Sprintf("%s --endpoints=https://127.0.0.1:%d --cacert=%s --cert=%s --key=%s --command-timeout=5s %s",
		bin("etcdctl"), EtcdClientPort, pki("etcd/ca.crt"), pki("etcd/healthcheck-client.crt"), pki("etcd/healthcheck-client.key"), args)
}

// binaryID names the binary a service runs (its sha256 in the bundle).
// It is in the service's unit, so a new binary restarts the service and
// nothing else does.
func binaryID(env *Env, program string) string {
	if env.Bundle == nil {
		return "none"
	}
	f, _, ok := env.Bundle.Program(program)
	if !ok {
		return "none"
	}
	return program + "@sha256:" + f.SHA256[:16]
}
