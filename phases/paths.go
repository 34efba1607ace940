package phases

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kubeforge/kubeforge/templates"
)

// Paths on the hosts, kubeadm's where a convention exists.
const (
	KubernetesDir = "/etc/kubernetes"
	PKIDir        = "/etc/kubernetes/pki"
	BinDir        = "/usr/local/bin"
	CNIBinDir     = "/opt/cni/bin"
	CNIConfDir    = "/etc/cni/net.d"
	FlannelDir    = "/etc/kube-flannel"
	EtcdDataDir   = "/var/lib/etcd"
	KubeletDir    = "/var/lib/kubelet"
	KubeProxyDir  = "/var/lib/kube-proxy"

	ContainerdConfig  = "/etc/containerd/config.toml"
	ContainerdSocket  = "unix:///run/containerd/containerd.sock"
	KubeletConfigFile = "/var/lib/kubelet/config.yaml"
	// KubeletKubeconfig points at the certificate the kubelet rotates
	// itself; BootstrapKubeconfig holds the token it starts from.
	KubeletKubeconfig   = "/etc/kubernetes/kubelet.conf"
	BootstrapKubeconfig = "/etc/kubernetes/bootstrap-kubelet.conf"
	KubeletClientCert   = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	// NodeKubeconfig is the node's own identity (system:node:<name>), the
	// kubelet's rotating client certificate. kube-proxy and flanneld use
	// it too: client-go reloads the certificate when it rotates, nothing
	// is issued for them on the admin machine, and a node that joins on
	// its own has what they need.
	NodeKubeconfig = KubeletKubeconfig

	// AuditPolicyFile is the API servers' audit policy; AuditLog their
	// audit log, rotated by the API server itself (auditLogMax*).
	AuditPolicyFile = "/etc/kubernetes/audit-policy.yaml"
	AuditLog        = "/var/log/kubernetes/audit/audit.log"

	// EncryptionConfigFile is how the API servers encrypt Secrets in etcd
	// (the state directory's certs.EncryptionConfigPath).
	EncryptionConfigFile = "/etc/kubernetes/encryption-config.yaml"
)

// The audit log's rotation, as the CIS benchmark asks: 30 days, 10 files
// (of spec.security.audit.maxSize MB, 100 by default).
const (
	auditLogMaxAge    = "30"
	auditLogMaxBackup = "10"
)

// tlsCipherSuites are the TLS 1.2 suites the API servers, the kubelets
// and etcd accept (TLS 1.3 has only strong ones): forward secret,
// authenticated encryption. Go's names, which all three read. A function,
// so no caller can change another's list.
func tlsCipherSuites() []string {
	return []string{
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	}
}

// kubeletCipherSuites are the same suites as the kubelet's configuration
// spells them for the CIS benchmark (4.2.12 compares names): the
// ChaCha20 ones without the _SHA256 that Go's names end with; Kubernetes
// reads both. etcd reads Go's names only.
func kubeletCipherSuites() []string {
	out := tlsCipherSuites()
	for i, s := range out {
		if strings.Contains(s, "CHACHA20") {
			out[i] = strings.TrimSuffix(s, "_SHA256")
		}
	}
	return out
}

// Ports the components listen on.
const (
	APIServerPort         = 6443
	EtcdClientPort        = 2379
	EtcdPeerPort          = 2380
	EtcdMetricsPort       = 2381
	KubeletPort           = 10250
	KubeProxyHealthPort   = 10256
	ControllerManagerPort = 10257
	SchedulerPort         = 10259
)

// unit renders a systemd service unit.
type unit struct {
	Description   string
	Documentation string
	After         []string
	Wants         []string
	Requires      []string
	Type          string
	// User and Group run the service's processes; "" is root. Commands
	// prefixed with "+" (ExecStartPre=+...) still run as root.
	User  string
	Group string
	// RuntimeDirectory is made under /run, owned by User and 0700, when
	// the service starts, and removed when it stops.
	RuntimeDirectory string
	Environment      []string
	// EnvironmentFile is read if it exists ("-" prefix): settings that
	// matter only at a first start (etcd's initial cluster) live there, so
	// changing them restarts nothing.
	EnvironmentFile string
	ExecStartPre    []string
	Exec            string
	Args            []string
	// ExecReload and ExecStopPost are whole command lines.
	ExecReload   string
	ExecStopPost []string
	RestartSec   string
	// TimeoutStopSec bounds a graceful stop before systemd kills.
	TimeoutStopSec string
	LimitNOFILE    int
	Delegate       bool
	OOMScoreAdjust int
	// Extra are more [Service] settings, "Key=value".
	Extra []string
}

func (u unit) render() ([]byte, error) {
	if u.Type == "" {
		u.Type = "simple"
	}
	if u.RestartSec == "" {
		u.RestartSec = "5s"
	}
	if u.Documentation == "" {
		u.Documentation = "https://kubernetes.io/docs/reference/command-line-tools-reference/"
	}
	return templates.Render("systemd/service.tmpl", u)
}

// flags turns a map into sorted --key=value arguments: stable units, so a
// re-run writes the same bytes.
func flags(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("--%s=%s", k, v))
	}
	sort.Strings(out)
	return out
}

func pki(name string) string      { return path.Join(PKIDir, name) }
func kubeconf(name string) string { return path.Join(KubernetesDir, name) }
func bin(name string) string      { return path.Join(BinDir, name) }
