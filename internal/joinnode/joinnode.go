// Package joinnode prepares `kubeforge join ENDPOINT --token ...` on the
// joining machine itself, kubeadm's way, before the machine changes in any
// way: it discovers the cluster (cluster-info, signed with the token, the
// CA pinned by its hash), reads the cluster's description with the token,
// checks this machine's name and address against it, and for a control
// plane fetches and decrypts the CAs 'init --upload-certs' stored. What it
// returns is the cluster with this machine in it, ready to play.
package joinnode

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/discovery"
	"github.com/kubeforge/kubeforge/internal/statedir"
)

// Objects in kube-system that a machine joining with a token reads.
const (
	// ConfigMapName holds config.Published: the cluster without SSH.
	ConfigMapName = "kubeforge-config"
	// CertsSecretName holds the CA keys, encrypted, for control planes
	// joining on their own (init --upload-certs).
	CertsSecretName = "kubeforge-certs"
	// CertsTTL is how long the uploaded certificates stay in the cluster.
	CertsTTL = 2 * time.Hour
	// KubeletKubeconfig is where a node's kubelet keeps its identity.
	KubeletKubeconfig = "/etc/kubernetes/kubelet.conf"
)

// Request is what the join was given.
type Request struct {
	Endpoint     string
	Token        bootstraptoken.Token
	CACertHashes []string
	ControlPlane bool
	// CertificateKey decrypts the uploaded CAs (a control plane).
	CertificateKey []byte
	// NodeName and Address are the flags; empty: the host name, and the
	// address this machine reaches the endpoint from.
	NodeName, Address string
	// StateDir is this machine's state directory (a control plane that
	// joined before keeps its CAs there).
	StateDir statedir.Dir
	Out      io.Writer
}

// Plan is what this machine joins as.
type Plan struct {
	// Cluster is the published cluster with this machine in it.
	Cluster *config.Cluster
	Self    *config.Host
	CAPEM   []byte
	// Shared are the CAs fetched for a control plane (nil for a worker,
	// or a control plane that has them from an earlier join).
	Shared map[string][]byte
	// Rerun: this machine is that node already.
	Rerun bool
}

// RefusedError is an input the cluster refused, or that cannot be right
// (a token that expired, a name another node has, a wrong certificate
// key): nothing was done.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// FlagError is a flag whose value cannot work (a node name that is no
// DNS label, an address that is no address).
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// Prepare checks everything that can refuse the join, touching nothing on
// this machine.
func Prepare(ctx context.Context, r Request) (*Plan, error) {
	name := r.NodeName
	if name == "" {
		hn, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("this machine's host name: %w: pass --node-name", err)
		}
		name = strings.ToLower(strings.SplitN(hn, ".", 2)[0])
	}
	res, err := discover(ctx, r)
	if err != nil {
		return nil, err
	}
	client := cluster.New(cluster.Options{Server: "https://" + r.Endpoint, Token: r.Token.String(), CAData: res.CAPEM})
	defer client.Close()
	c, err := publishedCluster(ctx, client, r.Token)
	if err != nil {
		return nil, err
	}
	addr, err := joinAddress(r.Address, r.Endpoint)
	if err != nil {
		return nil, err
	}
	rerun, err := checkNodeName(ctx, client, c, name, addr, res.CAPEM)
	if err != nil {
		return nil, err
	}
	p := &Plan{CAPEM: res.CAPEM, Rerun: rerun}
	if r.ControlPlane && !(rerun && r.StateDir.HasCAKey()) {
		if p.Shared, err = fetchSharedCerts(ctx, client, r.CertificateKey, res.CAPEM); err != nil {
			return nil, err
		}
	}
	self := config.Host{Name: name, Address: addr.String(), Roles: []config.Role{config.RoleWorker}, Local: true}
	if r.ControlPlane {
		self.Roles = []config.Role{config.RoleControlPlane}
		if stackedEtcd(c) {
			self.Roles = append(self.Roles, config.RoleEtcd)
		}
	}
	if i := slices.IndexFunc(c.Spec.Hosts, func(h config.Host) bool { return h.Name == name }); i >= 0 {
		c.Spec.Hosts[i] = self // listed in the cluster file too: this machine is that host
	} else {
		c.Spec.Hosts = append(c.Spec.Hosts, self)
	}
	if _, err := config.Check("the cluster with this machine", c); err != nil {
		return nil, err
	}
	p.Cluster, p.Self = c, c.Host(name)
	return p, nil
}

// discover is discovery.Discover, waiting a little for a token created
// moments ago: the cluster signs cluster-info with it within seconds.
func discover(ctx context.Context, r Request) (*discovery.Result, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := discovery.Discover(ctx, discovery.Request{Endpoint: r.Endpoint, Token: r.Token, CACertHashes: r.CACertHashes})
		var de *discovery.Error
		if err == nil || !errors.As(err, &de) || de.Reason != discovery.UnknownToken || time.Now().After(deadline) {
			if err == nil && r.Out != nil {
				fmt.Fprintf(r.Out, "join: the cluster at %s presents the CA %s; it publishes %s\n", r.Endpoint, res.CAHash, res.Server)
			}
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// refusedToken explains a 401: the token is not (or no longer) valid.
func refusedToken(tok bootstraptoken.Token, err error) error {
	return &RefusedError{fmt.Errorf("the cluster refused token %q (%v): it expired or was deleted; create a new one with 'kubeforge token create --print-join-command' on the admin machine", tok.ID, err)}
}

// publishedCluster reads the cluster's description (kube-system/
// kubeforge-config) with the token.
func publishedCluster(ctx context.Context, client *cluster.Client, tok bootstraptoken.Token) (*config.Cluster, error) {
	cm, err := client.ConfigMap(ctx, "kube-system", ConfigMapName)
	switch {
	case cluster.IsUnauthorized(err):
		return nil, refusedToken(tok, err)
	case errors.Is(err, cluster.ErrNotFound), errors.Is(err, cluster.ErrForbidden):
		return nil, fmt.Errorf("the cluster has no readable kube-system/%s (%v): it was set up by another tool or an older kubeforge; run 'kubeforge init -f FILE' on the admin machine to publish it", ConfigMapName, err)
	case err != nil:
		return nil, err
	}
	c, _, err := config.Parse("kube-system/"+ConfigMapName, []byte(cm.Data["cluster.yaml"]))
	return c, err
}

// joinAddress is --address, else the address this machine reaches the
// endpoint from (a UDP "connection" sends nothing).
func joinAddress(flag, endpoint string) (netip.Addr, error) {
	if flag != "" {
		a, err := netip.ParseAddr(flag)
		if err != nil {
			return a, &FlagError{fmt.Errorf("--address %q: not an IP address", flag)}
		}
		return a, nil
	}
	conn, err := net.Dial("udp", endpoint)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find this machine's address toward %s: %w: pass --address", endpoint, err)
	}
	defer conn.Close()
	ua, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("find this machine's address toward %s: pass --address", endpoint)
	}
	a, _ := netip.AddrFromSlice(ua.IP)
	return a.Unmap(), nil
}

var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidNodeName: a lowercase DNS label.
func ValidNodeName(s string) bool { return len(s) <= 63 && nodeName.MatchString(s) }

// localNodeName is the node this machine already is in the cluster whose
// CA is caPEM: the kubelet's client certificate, if it chains to that CA.
func localNodeName(caPEM []byte) string {
	cfg, err := clientcmd.LoadFromFile(KubeletKubeconfig)
	if err != nil {
		return ""
	}
	for _, ai := range cfg.AuthInfos {
		data := ai.ClientCertificateData
		if ai.ClientCertificate != "" {
			if data, err = os.ReadFile(ai.ClientCertificate); err != nil {
				return ""
			}
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return ""
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return ""
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return ""
		}
		return strings.TrimPrefix(cert.Subject.CommonName, certs.NodeCNPrefix)
	}
	return ""
}

// checkNodeName refuses a name or address another node has. It reports
// rerun when this machine is that node already (a second join).
func checkNodeName(ctx context.Context, client *cluster.Client, c *config.Cluster, name string, addr netip.Addr, caPEM []byte) (bool, error) {
	if !ValidNodeName(name) {
		return false, &FlagError{fmt.Errorf("node name %q is not a lowercase DNS label (a-z, 0-9, '-'): pass --node-name", name)}
	}
	mine := localNodeName(caPEM)
	for _, h := range c.Spec.Hosts {
		switch {
		case h.Name == name && h.ClusterAddress() != addr:
			return false, &RefusedError{fmt.Errorf("the cluster lists host %s with address %s, but this machine is %s: pass --node-name for another name, or --address", name, h.ClusterAddress(), addr)}
		case h.Name != name && h.ClusterAddress() == addr:
			return false, &RefusedError{fmt.Errorf("the cluster lists address %s as host %s: pass --node-name %s, or check --address", addr, h.Name, h.Name)}
		}
	}
	_, err := client.Node(ctx, name)
	switch {
	case err == nil && mine == name:
		return true, nil
	case err == nil:
		return false, &RefusedError{fmt.Errorf("a node named %s is already in the cluster: pass --node-name with another name, or remove that node first (kubectl delete node %s)", name, name)}
	case errors.Is(err, cluster.ErrNotFound):
		if mine != "" && mine != name {
			return false, &RefusedError{fmt.Errorf("this machine is node %s of this cluster already: pass --node-name %s to check it again", mine, mine)}
		}
		return false, nil
	case cluster.IsUnauthorized(err):
		return false, &RefusedError{fmt.Errorf("the cluster refused the token: %w", err)}
	default:
		return false, fmt.Errorf("look up node %s: %w", name, err)
	}
}

// stackedEtcd: every control plane runs an etcd member.
func stackedEtcd(c *config.Cluster) bool {
	for _, h := range c.HostsWith(config.RoleControlPlane) {
		if !h.Has(config.RoleEtcd) {
			return false
		}
	}
	return true
}

// fetchSharedCerts reads and decrypts the CAs 'init --upload-certs'
// stored.
func fetchSharedCerts(ctx context.Context, client *cluster.Client, key, caPEM []byte) (map[string][]byte, error) {
	s, err := client.Secret(ctx, "kube-system", CertsSecretName)
	switch {
	case errors.Is(err, cluster.ErrNotFound), errors.Is(err, cluster.ErrForbidden):
		return nil, &RefusedError{fmt.Errorf("the cluster holds no uploaded certificates (kube-system/%s: %v): they are deleted %s after upload; "+
			"run 'kubeforge init phase upload-certs -f FILE' on the admin machine and use the key it prints", CertsSecretName, err, CertsTTL)}
	case err != nil:
		return nil, err
	}
	out := map[string][]byte{}
	for k, sealed := range s.Data {
		rel, ok := certs.SharedPath(k)
		if !ok {
			continue
		}
		data, err := certs.Open(key, sealed)
		if err != nil {
			return nil, &RefusedError{fmt.Errorf("--certificate-key: %w: it is not the key the certificates were uploaded with; "+
				"use the key 'kubeforge init phase upload-certs' printed (run it again for a new one)", err)}
		}
		out[rel] = data
	}
	for _, rel := range certs.SharedFiles() {
		if _, ok := out[rel]; !ok && !certs.OptionalShared(rel) {
			return nil, fmt.Errorf("kube-system/%s lacks %s: upload the certificates again", CertsSecretName, rel)
		}
	}
	if string(out[certs.ClusterCA().CertPath()]) != string(caPEM) {
		return nil, fmt.Errorf("kube-system/%s holds another CA than the one this machine pinned: upload the certificates again", CertsSecretName)
	}
	return out, nil
}
