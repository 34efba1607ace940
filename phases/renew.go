package phases

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
)

// The phases of `kubeforge certs renew -f`: the certificates are renewed
// in the state directory, every host keeps a backup of what it had, then
// the control planes take the new ones one at a time (each gives the VIP
// away first and is healthy again before the next), external etcd
// members likewise, the kubelets' serving requests are approved, and
// every component is checked to serve its new certificate.

// certsRenewPhase renews certificates in the state directory.
type certsRenewPhase struct {
	env   *Env
	names []string
}

// NewCertsRenew renews names ("all", or the table's names) in the state
// directory, with the cluster file's names and validity.
func NewCertsRenew(env *Env, names []string) Phase { return &certsRenewPhase{env: env, names: names} }

func (*certsRenewPhase) Title() string { return "Renew the certificates (in the state directory)" }

func (p *certsRenewPhase) Enabled() (bool, string) {
	if len(p.names) == 0 {
		return false, "no certificate named"
	}
	return true, ""
}

func (p *certsRenewPhase) Prepare(context.Context) error {
	if p.env.DryRun {
		fmt.Fprintf(p.env.Out, "[certs-renew] would renew %s in %s\n", strings.Join(p.names, ", "), p.env.StateDir)
		return nil
	}
	spec := p.env.PKI
	backup, results, err := certs.Renew(p.env.StateDir.PKI(), p.names, certs.RenewOptions{Spec: &spec})
	if err != nil {
		return err
	}
	for _, r := range results {
		fmt.Fprintf(p.env.Out, "[certs-renew] %s renewed (%s)\n", r.Name, r.Reason)
	}
	fmt.Fprintf(p.env.Out, "[certs-renew] the previous files are in %s\n", backup)
	return nil
}

func (*certsRenewPhase) Run(context.Context, *host.Host) error { return nil }

// HostBackupDir keeps each host's copies of its certificates from before a
// renewal.
const HostBackupDir = "/var/lib/kubeforge/backups"

// BackupStamp names a renewal's backups, the same on every host.
func BackupStamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// certsBackupPhase archives a host's certificates and kubeconfigs before
// anything replaces them.
type certsBackupPhase struct {
	env   *Env
	stamp string
}

// NewCertsBackup archives each host's PKI as certs-<stamp>.tar.gz.
func NewCertsBackup(env *Env, stamp string) Phase { return &certsBackupPhase{env: env, stamp: stamp} }

func (*certsBackupPhase) Title() string { return "Back up each host's certificates" }

func (p *certsBackupPhase) archive() string {
	return path.Join(HostBackupDir, "certs-"+p.stamp+".tar.gz")
}

func (p *certsBackupPhase) Plan(context.Context, *host.Host) ([]string, error) {
	return []string{"archive /etc/kubernetes and the kubelet's certificates in " + p.archive()}, nil
}

func (p *certsBackupPhase) Run(ctx context.Context, h *host.Host) error {
	_, err := h.Run(ctx, fmt.Sprintf(`set -e
umask 077
mkdir -p %[1]s
cd /
paths=""
for p in etc/kubernetes var/lib/kubelet/pki; do [ -e "$p" ] && paths="$paths $p"; done
[ -n "$paths" ] || exit 0
tar -czf %[2]s.tmp $paths
mv -f %[2]s.tmp %[2]s`, HostBackupDir, host.Quote(p.archive())))
	return err
}

// renewPreflightPhase refuses to start a renewal on a control plane that
// is not healthy: rolling through it would take the cluster down.
type renewPreflightPhase struct{ env *Env }

func (*renewPreflightPhase) Title() string  { return "Check every control plane is healthy" }
func (*renewPreflightPhase) ReadOnly() bool { return true }

func (p *renewPreflightPhase) Run(ctx context.Context, h *host.Host) error {
	if h.Spec.Has(config.RoleEtcd) {
		e, err := p.env.Client.EtcdOn(ctx, h)
		if err == nil {
			err = e.Health(ctx, cluster.LocalEtcd)
		}
		if err != nil {
			return fmt.Errorf("its etcd member is not healthy (%v): fix it first (journalctl -u etcd), or, if its certificates expired, renew with --recover", err)
		}
	}
	if err := p.env.Client.WaitAPIServer(ctx, h, 5*time.Second); err != nil {
		return fmt.Errorf("%w: fix it first, or, if its certificates expired, renew with --recover", err)
	}
	return nil
}

// rollPhase takes one control plane at a time onto its new files: it gives
// the VIP away (maintenance), restarts etcd (and waits for the whole etcd
// cluster to be healthy), the API server (and waits for /readyz), the
// controller-manager and scheduler, then takes its place among the VIP's
// holders again. The step is serial.
type rollPhase struct{ env *Env }

func (*rollPhase) Title() string {
	return "Control planes one at a time: VIP moved away, etcd and the control plane restarted"
}

func (p *rollPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	var lines []string
	if h.Spec.Has(config.RoleEtcd) {
		l, err := (&etcdPhase{env: p.env}).Plan(ctx, h)
		if err != nil {
			return nil, err
		}
		lines = append(lines, l...)
	}
	l, err := (&controlPlanePhase{env: p.env}).Plan(ctx, h)
	return append(lines, l...), err
}

func (p *rollPhase) Run(ctx context.Context, h *host.Host) error {
	return withVIPAway(ctx, p.env, h, func() error {
		if h.Spec.Has(config.RoleEtcd) {
			if err := (&etcdPhase{env: p.env}).Run(ctx, h); err != nil {
				return err
			}
			if err := p.env.Client.WaitEtcdCluster(ctx, h, 2*time.Minute); err != nil {
				return err
			}
		}
		return (&controlPlanePhase{env: p.env}).Run(ctx, h)
	})
}

// kubeletCertsPhase approves the kubelets' pending serving certificate
// requests that name only their node and its addresses.
type kubeletCertsPhase struct{ env *Env }

func (*kubeletCertsPhase) Title() string { return "Approve the kubelets' serving certificate requests" }

func (p *kubeletCertsPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	pending, err := PendingCSRs(ctx, p.env)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, c := range pending {
		if c.Signer == KubeletServingSigner {
			lines = append(lines, "approve "+c.Name+" from "+c.Requestor+" if it names only that node")
		}
	}
	return lines, nil
}

func (p *kubeletCertsPhase) Run(ctx context.Context, h *host.Host) error {
	approved, refused, err := p.env.Client.ApproveServingCSRs(ctx, "")
	if err != nil {
		return err
	}
	for _, name := range approved {
		fmt.Fprintf(p.env.Out, "[kubelet-certs] approved %s\n", name)
	}
	for _, e := range refused {
		fmt.Fprintf(p.env.Out, "[kubelet-certs] warning: %v\n", e)
	}
	return nil
}

// certsVerifyPhase checks, over TLS from the host itself, that each
// component serves the certificate the state directory holds for it: a
// renewal is done when the running processes use the new files, not when
// the files changed.
type certsVerifyPhase struct{ env *Env }

func (*certsVerifyPhase) Title() string  { return "Check each component serves its new certificate" }
func (*certsVerifyPhase) ReadOnly() bool { return true }

// served is one TLS endpoint and the certificate it should present.
type served struct {
	name, addr string
	want       string // state directory file; "" for the kubelet's own
	client     bool   // etcd asks for a client certificate
}

func (p *certsVerifyPhase) endpoints(h *host.Host) []served {
	node := path.Join(certs.NodesDir, h.Name(), certs.PKIDir)
	ip := h.Spec.ClusterAddress()
	var out []served
	if h.Spec.Has(config.RoleControlPlane) {
		out = append(out, served{"kube-apiserver", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p.env.Cluster.Spec.ControlPlane.Port)).String(),
			path.Join(node, certs.APIServerName+certs.CertExt), false})
	}
	if h.Spec.Has(config.RoleEtcd) {
		out = append(out,
			served{"etcd (clients)", netip.AddrPortFrom(ip, EtcdClientPort).String(), path.Join(node, certs.EtcdServerBase+certs.CertExt), true},
			served{"etcd (peers)", netip.AddrPortFrom(ip, EtcdPeerPort).String(), path.Join(node, certs.EtcdPeerBase+certs.CertExt), true})
	}
	return append(out, served{"kubelet", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), KubeletPort).String(), "", false})
}

func (p *certsVerifyPhase) Run(ctx context.Context, h *host.Host) error {
	if p.env.DryRun {
		return nil
	}
	var client []tls.Certificate
	if h.Spec.Has(config.RoleEtcd) {
		_, cert, key := p.env.StateDir.Etcd()
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return err
		}
		client = []tls.Certificate{pair}
	}
	var problems []string
	for _, ep := range p.endpoints(h) {
		got, err := presented(ctx, h, ep.addr, client)
		if ep.want == "" && (err != nil || time.Now().After(got.NotAfter)) {
			// A kubelet whose serving certificate expired serves none
			// until it has fetched the one kubelet-certs just approved:
			// give it a few seconds.
			_ = wait.For(ctx, 30*time.Second, func() (bool, error) {
				got, err = presented(ctx, h, ep.addr, client)
				return err == nil && time.Now().Before(got.NotAfter), nil
			})
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s at %s: %v", ep.name, ep.addr, err))
			continue
		}
		if ep.want == "" { // the kubelet's: valid, and the cluster CA's, which the API servers check
			if problem := p.kubeletProblem(h, got); problem != "" {
				problems = append(problems, ep.name+" "+problem)
			}
			continue
		}
		want, err := readCert(p.env.StateDir.File(ep.want))
		if err != nil {
			return err
		}
		if !want.Equal(got) {
			problems = append(problems, fmt.Sprintf("%s serves serial %x (until %s), not the new %x: restart it (systemctl restart %s)",
				ep.name, got.SerialNumber, got.NotAfter.Format(time.RFC3339), want.SerialNumber, strings.Fields(ep.name)[0]))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// kubeletProblem says what is wrong with the serving certificate a kubelet
// presents, or "". The kubelet rotates it itself, from the cluster CA
// (serverTLSBootstrap); the API servers accept no other
// (--kubelet-certificate-authority).
func (p *certsVerifyPhase) kubeletProblem(h *host.Host, got *x509.Certificate) string {
	if time.Now().After(got.NotAfter) {
		return "serves a certificate that expired " + got.NotAfter.Format(time.RFC3339)
	}
	ca, err := readCert(p.env.StateDir.CACert())
	if err != nil {
		return "cannot be checked: " + err.Error()
	}
	if err := got.CheckSignatureFrom(ca); err != nil {
		return fmt.Sprintf("serves a certificate the cluster CA did not sign (issuer %q), so the API servers cannot reach it for logs and exec: "+
			"'kubeforge join -f <cluster file> --host %s' configures its kubelet to ask for one (serverTLSBootstrap)", got.Issuer.CommonName, h.Name())
	}
	return ""
}

// presented is the leaf certificate a TLS server on the host presents.
func presented(ctx context.Context, h *host.Host, addr string, client []tls.Certificate) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := h.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	var leaf *x509.Certificate
	tc := tls.Client(conn, &tls.Config{
		Certificates: client,
		// Only the presented certificate matters here; it is compared
		// with the expected one byte for byte.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				leaf, _ = x509.ParseCertificate(raw[0])
			}
			return nil
		},
	})
	defer tc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
	}
	if err := tc.HandshakeContext(ctx); err != nil && leaf == nil {
		return nil, err
	}
	if leaf == nil {
		return nil, errors.New("no certificate presented")
	}
	return leaf, nil
}

func readCert(p string) (*x509.Certificate, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: not PEM", p)
	}
	return x509.ParseCertificate(block.Bytes)
}
