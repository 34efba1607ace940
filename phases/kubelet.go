package phases

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
	"github.com/kubeforge/kubeforge/templates"
)

// kubeletPhase runs the kubelet on every node. A node kubeforge sets up
// over SSH starts with a client certificate issued by kubeforge (as
// kubeadm's control planes do), so it registers as soon as the API server
// answers; a node joining on its own, without the CA key, joins by TLS
// bootstrap with the bootstrap token. Either way the kubelet rotates its
// client certificate itself from then on. The flannel CNI configuration
// is written before the kubelet first starts, so the node is Ready as
// soon as it registers (the flannel CNI plugin waits for flanneld's lease
// before it sets up a pod). The step ends once the node is registered;
// kubelet-finalize labels it and approves its serving certificate.
type kubeletPhase struct{ env *Env }

// kubeletInitialCert is the file the kubelet's first client certificate
// is written to; kubelet-client-current.pem points at it until the
// kubelet rotates it.
const kubeletInitialCert = KubeletDir + "/pki/kubelet-client-kubeforge.pem"

func (*kubeletPhase) Title() string { return "kubelet" }

// ClusterDNS is the kube-dns Service's address: the 10th of the range.
func ClusterDNS(c *config.Cluster) netip.Addr {
	a := netip.MustParsePrefix(c.Spec.Networking.ServiceCIDR).Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a
}

// ControlPlaneTaint keeps ordinary pods off control planes that are not
// also workers.
var ControlPlaneTaint = corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}

// Kubelet settings the CIS benchmark asks for, where upstream's default is
// none or is not said.
const (
	// podPidsLimit bounds the processes and threads of one pod (the
	// kubelet's default is no limit), so a fork bomb or a thread leak in
	// one pod cannot take the node's PIDs from the others and from the
	// node's own services. 4096 is well above what ordinary pods run (a
	// busy JVM has some hundreds of threads) and a small part of a node's
	// PID space (pid_max: 4194304 with systemd's default, 32768 at least).
	podPidsLimit = 4096
	// eventRecordQPS is upstream's default (50 events a second, bursts of
	// 100), said out loud: enough to record what happens on a node
	// without letting one flood the API server.
	eventRecordQPS = 50
)

// kubeletConfigFile is the configuration as written: readOnlyPort is
// omitted from KubeletConfiguration when 0, and is written here so that
// the file says the unauthenticated read-only port is off.
type kubeletConfigFile struct {
	kubeletv1beta1.KubeletConfiguration
	ReadOnlyPort int32 `json:"readOnlyPort"`
}

// kubeletConfig renders the node's KubeletConfiguration from its facts.
func (p *kubeletPhase) kubeletConfig(h *host.Host, s nodeState) ([]byte, error) {
	c := p.env.Cluster
	facts, resolvConf := s.facts, s.resolvConf
	t, f := true, false
	pids, qps := int64(podPidsLimit), int32(eventRecordQPS)
	cfg := kubeletv1beta1.KubeletConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		Authentication: kubeletv1beta1.KubeletAuthentication{
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: &f},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: &t},
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: pki("ca.crt")},
		},
		Authorization:            kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		CgroupDriver:             "systemd",
		ContainerRuntimeEndpoint: ContainerdSocket,
		ClusterDNS:               []string{ClusterDNS(c).String()},
		ClusterDomain:            c.Spec.Networking.DNSDomain,
		RotateCertificates:       true,
		// Every kubelet serves with a certificate from the cluster CA,
		// which the API servers check (--kubelet-certificate-authority).
		// Someone has to approve its request: kubeforge does, after
		// checking the node's names and addresses (kubelet-finalize, the
		// renewals); a node joining on its own, without admin rights,
		// waits for an admin, and is told so at the end of its join.
		ServerTLSBootstrap: true,
		HealthzBindAddress: "127.0.0.1",
		ResolverConfig:     &resolvConf,
		MaxPods:            int32(c.Spec.Kubelet.MaxPods),
		// Hardening: TLS 1.2 or newer with the API servers' strong
		// suites, a bound on each pod's PIDs, the runtime's default
		// seccomp profile for every container that names none, events
		// recorded at a stated rate.
		TLSMinVersion:   "VersionTLS12",
		TLSCipherSuites: kubeletCipherSuites(),
		PodPidsLimit:    &pids,
		SeccompDefault:  &t,
		EventRecordQPS:  &qps,
		// The kernel settings the kubelet expects are kubeforge's to
		// set (KubeletSysctlFile): the kubelet only checks them, where
		// they hold.
		ProtectKernelDefaults: s.protectKernel,
	}
	if facts.CgroupVersion == 1 {
		cfg.FailCgroupV1 = &f // Kubernetes 1.35 to 1.37 still run on cgroup v1 when told to
	}
	if c.Spec.Kubelet.AllowSwap {
		cfg.FailSwapOn = &f
		cfg.MemorySwap.SwapBehavior = "NoSwap"
	}
	if h.Spec.Has(config.RoleControlPlane) && !h.Spec.Has(config.RoleWorker) {
		cfg.RegisterWithTaints = []corev1.Taint{ControlPlaneTaint}
	}
	data, err := yaml.Marshal(kubeletConfigFile{KubeletConfiguration: cfg, ReadOnlyPort: 0})
	if err != nil {
		return nil, err
	}
	return append([]byte("# Generated by kubeforge; changes are overwritten.\n"), data...), nil
}

// bootstrapKubeconfig holds the bootstrap token, for the first start.
func (p *kubeletPhase) bootstrapKubeconfig() ([]byte, error) {
	caPEM, err := p.env.caPEM()
	if err != nil {
		return nil, err
	}
	return certs.NewKubeconfig("kubernetes", p.env.Cluster.APIServerURL(), "tls-bootstrap-token-user", caPEM,
		clientcmdapi.AuthInfo{Token: p.env.Token.String()})
}

// nodeKubeconfig points at the kubelet's own certificate file, which it
// rotates: the file the kubelet writes itself after a TLS bootstrap.
func (p *kubeletPhase) nodeKubeconfig() ([]byte, error) {
	caPEM, err := p.env.caPEM()
	if err != nil {
		return nil, err
	}
	return certs.NewKubeconfig("kubernetes", p.env.Cluster.APIServerURL(), "default-auth", caPEM,
		clientcmdapi.AuthInfo{ClientCertificate: KubeletClientCert, ClientKey: KubeletClientCert})
}

// issues reports whether kubeforge issues the node's first client
// certificate itself: it holds the cluster CA's key.
func (p *kubeletPhase) issues() bool {
	return p.env.Client.Admin() && p.env.StateDir.HasCAKey()
}

// nodeState is what decides the kubelet's files on a host.
type nodeState struct {
	bootstrapped bool   // it has a valid client certificate and kubelet.conf
	expired      bool   // it had one, which expired: it must get another
	resolvConf   string // the resolv.conf pods inherit
	facts        *host.Facts
	// protectKernel: the kernel holds the settings the kubelet checks,
	// and keeps them across a reboot (kernelState.protect).
	protectKernel bool
}

func (p *kubeletPhase) state(ctx context.Context, h *host.Host) (nodeState, error) {
	// The client certificate only (the file holds its key too).
	out, err := h.Run(ctx, fmt.Sprintf("[ -s %[1]s ] && [ -s %[2]s ] && echo bootstrapped && sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' %[2]s | sed -n '1,/-----END CERTIFICATE-----/p'; true",
		KubeletKubeconfig, KubeletClientCert))
	if err != nil {
		return nodeState{}, err
	}
	s := nodeState{bootstrapped: strings.HasPrefix(out, "bootstrapped")}
	if block, _ := pem.Decode([]byte(strings.TrimPrefix(out, "bootstrapped\n"))); s.bootstrapped && block != nil {
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil && time.Now().After(cert.NotAfter) {
			// It cannot reach the API with it to rotate it.
			s.bootstrapped, s.expired = false, true
		}
	}
	// Pods inherit the resolver file's servers: only one a pod can reach,
	// else none (a loopback resolver inside a pod is the pod itself).
	if s.facts, err = h.Facts(ctx); err != nil {
		return nodeState{}, err
	}
	if len(s.facts.Upstreams()) > 0 {
		s.resolvConf = s.facts.ResolvConf
	}
	return s, nil
}

func (p *kubeletPhase) desired(h *host.Host, s nodeState) (Desired, error) {
	files, err := p.env.pkiFiles("pki/ca.crt", pki("ca.crt"))
	if err != nil {
		return Desired{}, err
	}
	cfg, err := p.kubeletConfig(h, s)
	if err != nil {
		return Desired{}, err
	}
	files = append(files, File{Path: KubeletConfigFile, Data: cfg, Mode: host.FileMode{Perm: 0o600}})
	inputs := paths(files)
	// Applied before the kubelet starts (Run); read only by the kernel.
	files = append(files, kubeletSysctlFile())
	conflist, err := templates.Render("cni/10-flannel.conflist.tmpl", nil)
	if err != nil {
		return Desired{}, err
	}
	files = append(files, File{Path: flannelConflist, Data: conflist, Mode: host.FileMode{Perm: 0o644}})
	switch {
	case s.bootstrapped:
	case p.issues():
		kc, err := p.nodeKubeconfig()
		if err != nil {
			return Desired{}, err
		}
		files = append(files, File{Path: KubeletKubeconfig, Data: kc, Mode: host.FileMode{Perm: 0o600}})
	default:
		bk, err := p.bootstrapKubeconfig()
		if err != nil {
			return Desired{}, err
		}
		files = append(files, File{Path: BootstrapKubeconfig, Data: bk, Mode: host.FileMode{Perm: 0o600}})
	}
	u, err := unit{
		Description: "kubelet: the Kubernetes node agent",
		After:       []string{"containerd.service", "network-online.target"},
		Wants:       []string{"containerd.service", "network-online.target"},
		Environment: []string{"KUBEFORGE_BINARY=" + binaryID(p.env, "kubelet")},
		Exec:        bin("kubelet"),
		Args: flags(map[string]string{
			"config":               KubeletConfigFile,
			"kubeconfig":           KubeletKubeconfig,
			"bootstrap-kubeconfig": BootstrapKubeconfig,
			"node-ip":              h.Spec.ClusterAddress().String(),
			"hostname-override":    h.Name(),
		}),
	}.render()
	if err != nil {
		return Desired{}, err
	}
	return Desired{Files: files, Services: []Service{{Name: "kubelet", Unit: u, Inputs: inputs}}}, nil
}

// nodeLabels are set through the API: node-role labels cannot be set by
// the kubelet itself (NodeRestriction).
func nodeLabels(h *config.Host) map[string]string {
	labels := map[string]string{}
	for k, v := range h.Labels {
		labels[k] = v
	}
	if h.Has(config.RoleControlPlane) {
		labels["node-role.kubernetes.io/control-plane"] = ""
		labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
	}
	return labels
}

func (p *kubeletPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	s, err := p.state(ctx, h)
	if err != nil {
		return nil, err
	}
	k, err := readKernel(ctx, h)
	if err != nil {
		return nil, err
	}
	var why string
	s.protectKernel, why = k.protect(false)
	lines, err := planOf(ctx, h)(p.desired(h, s))
	if err != nil {
		return nil, err
	}
	if why != "" {
		lines = append(lines, "run the kubelet without protectKernelDefaults: "+why)
	}
	if s.bootstrapped {
		if ok, _ := h.Check(ctx, "[ -e "+BootstrapKubeconfig+" ]"); ok {
			lines = append(lines, "remove "+BootstrapKubeconfig+" (the node has its certificate)")
		}
	} else if p.issues() {
		lines = append(lines, "write its first client certificate ("+certs.NodeCNPrefix+h.Name()+"), issued with the cluster CA")
	} else {
		lines = append(lines, "join the cluster by TLS bootstrap")
	}
	return lines, nil
}

func (p *kubeletPhase) Run(ctx context.Context, h *host.Host) error {
	s, err := p.state(ctx, h)
	if err != nil {
		return err
	}
	// The kernel settings first: with protectKernelDefaults the kubelet
	// starts only if they hold.
	k, err := setKernel(ctx, h)
	if err != nil {
		return fmt.Errorf("the kubelet's kernel settings: %w", err)
	}
	var why string
	if s.protectKernel, why = k.protect(true); why != "" {
		fmt.Fprintf(p.env.Out, "[kubelet] %s: warning: protectKernelDefaults stays off (%s): the kubelet sets them itself at start, "+
			"and does not start if it cannot either\n", h, why)
		p.env.Log.Warn("kubelet without protectKernelDefaults", "host", h.Name(), "why", why)
	}
	d, err := p.desired(h, s)
	if err != nil {
		return err
	}
	if _, err := h.Run(ctx, "mkdir -p "+KubeletDir+"/pki "+CNIConfDir); err != nil {
		return err
	}
	if s.expired {
		how := "it joins again with the bootstrap token"
		if p.issues() {
			how = "kubeforge issues it another"
		}
		fmt.Fprintf(p.env.Out, "[kubelet] %s: its client certificate expired: %s\n", h, how)
		if _, err := h.Run(ctx, "rm -f "+KubeletKubeconfig+" /var/lib/kubelet/pki/kubelet-client-*.pem"); err != nil {
			return err
		}
	}
	if !s.bootstrapped && p.issues() {
		if err := p.writeClientCert(ctx, h); err != nil {
			return err
		}
	}
	changes, err := d.Apply(ctx, h)
	if err != nil {
		return err
	}
	if s.expired && !slices.Contains(changes.Restart, "kubelet") && !slices.Contains(changes.Start, "kubelet") {
		if _, err := h.Run(ctx, "systemctl restart kubelet.service"); err != nil {
			return err
		}
	}
	// The token is only for the first start; once the kubelet has its
	// certificate it should not linger on the node.
	if err := wait.For(ctx, 3*time.Minute, func() (bool, error) {
		s, err := p.state(ctx, h)
		return s.bootstrapped, err
	}); err != nil {
		return fmt.Errorf("the kubelet on %s did not get its client certificate: %w (see journalctl -u kubelet on it)", h.Name(), err)
	}
	if _, err := h.Run(ctx, "rm -f "+BootstrapKubeconfig); err != nil {
		return err
	}
	registered := func() (bool, error) {
		_, err := p.env.Client.Node(ctx, h.Name())
		if cluster.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
	if err := wait.For(ctx, 3*time.Minute, registered); err != nil {
		return fmt.Errorf("node %s did not register: %w (see journalctl -u kubelet on it)", h.Name(), err)
	}
	return nil
}

// writeClientCert puts the node's first client certificate where the
// kubelet keeps the ones it rotates: a file, and the
// kubelet-client-current.pem link to it.
func (p *kubeletPhase) writeClientCert(ctx context.Context, h *host.Host) error {
	pem, err := certs.NodeClientPEM(p.env.StateDir.PKI(), h.Name(),
		p.env.Cluster.Spec.Certificates.KubeletValidity.Duration, time.Now())
	if err != nil {
		return err
	}
	if err := h.Put(ctx, kubeletInitialCert, pem, host.FileMode{Perm: 0o600}); err != nil {
		return err
	}
	_, err = h.Run(ctx, fmt.Sprintf("ln -sfn %s %s.kubeforge-new && mv -Tf %[2]s.kubeforge-new %[2]s", kubeletInitialCert, KubeletClientCert))
	return err
}

// missingLabels returns key=value for each label the node lacks.
func (p *kubeletFinalizePhase) missingLabels(ctx context.Context, h *host.Host) ([]string, error) {
	have := map[string]string{}
	node, err := p.env.Client.Node(ctx, h.Name())
	switch {
	case err == nil:
		have = node.Labels
	case !cluster.IsNotFound(err):
		return nil, err
	}
	var missing []string
	for k, v := range nodeLabels(h.Spec) {
		if got, ok := have[k]; !ok || got != v {
			missing = append(missing, k+"="+v)
		}
	}
	slices.Sort(missing)
	return missing, nil
}

// kubeletFinalizePhase finishes a node once its kubelet registered: the
// node's labels, set through the API, and the kubelet's serving
// certificate, approved after its names and addresses are checked. It is
// a step of its own so that nothing waits for it but the end of the run:
// the network and the add-ons go on while the kubelet asks for its
// certificate.
type kubeletFinalizePhase struct{ env *Env }

func (*kubeletFinalizePhase) Title() string {
	return "Node labels and kubelet serving certificate"
}

// Enabled: a node joining on its own has no right to label itself or to
// approve its own serving certificate: its request waits for an admin
// (the join says how at its end).
func (p *kubeletFinalizePhase) Enabled() (bool, string) {
	if !p.env.Client.Admin() {
		return false, "a node joining on its own: its kubelet's serving certificate request waits for an admin's approval"
	}
	return true, ""
}

func (p *kubeletFinalizePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	var lines []string
	if missing, err := p.missingLabels(ctx, h); err == nil && len(missing) > 0 {
		lines = append(lines, "label the node "+strings.Join(missing, " "))
	}
	if ok, err := h.Check(ctx, "[ -s "+kubeletServingCert+" ]"); err != nil || ok {
		return lines, err
	}
	return append(lines, "approve its serving certificate once its names and addresses check out"), nil
}

func (p *kubeletFinalizePhase) Run(ctx context.Context, h *host.Host) error {
	if p.env.DryRun {
		return nil
	}
	missing, err := p.missingLabels(ctx, h)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		if err := p.env.Client.LabelNode(ctx, h.Name(), nodeLabels(h.Spec)); err != nil {
			return err
		}
	}
	return p.approveServingCert(ctx, h)
}

// kubeletServingCert is the serving certificate the kubelet got approved.
const kubeletServingCert = KubeletDir + "/pki/kubelet-server-current.pem"

// approveServingCert approves the node's pending kubelet-serving CSRs
// once their names and addresses check out. The kube-controller-manager
// approves client certificates only; serving certificates prove the node
// owns its addresses, which only the installer knows.
func (p *kubeletFinalizePhase) approveServingCert(ctx context.Context, h *host.Host) error {
	if ok, err := h.Check(ctx, "[ -s "+kubeletServingCert+" ]"); err != nil || ok {
		return err
	}
	return wait.For(ctx, 2*time.Minute, func() (bool, error) {
		approved, refused, err := p.env.Client.ApproveServingCSRs(ctx, h.Name())
		switch {
		case err != nil:
			return false, err
		case len(refused) > 0:
			return false, wait.Permanent(refused[0])
		}
		if len(approved) > 0 {
			return true, nil
		}
		// Approved already (a re-run), or not asked for yet.
		return h.Check(ctx, "[ -s "+kubeletServingCert+" ]")
	})
}
