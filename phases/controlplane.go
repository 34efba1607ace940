package phases

import (
	"context"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/templates"
)

// controlPlanePhase runs kube-apiserver, waits for /readyz, then runs
// kube-controller-manager and kube-scheduler (they crash once on missing
// RBAC if started before the API server is ready) and waits for them to
// be healthy. With deferHealth (the init and join playbooks), the step
// ends once they are started and the ready step checks their health:
// what comes next needs only the API server.
type controlPlanePhase struct {
	env         *Env
	deferHealth bool
}

func (*controlPlanePhase) Title() string {
	return "Control plane (kube-apiserver, controller-manager, scheduler)"
}

// files are the PKI files a control plane needs, and the API server's
// configuration files: audit policy, encryption of Secrets, admission,
// authentication. The CA keys stay on the
// admin machine, but the cluster CA's: the controller-manager signs the
// kubelets' certificates with it. The API server's serving certificate is
// the host's own.
func (p *controlPlanePhase) files(h *host.Host) ([]File, error) {
	pairs := []string{
		"pki/ca.crt", pki("ca.crt"), "pki/ca.key", pki("ca.key"),
		"pki/front-proxy-ca.crt", pki("front-proxy-ca.crt"),
		"pki/etcd/ca.crt", pki("etcd/ca.crt"),
		"pki/sa.key", pki("sa.key"), "pki/sa.pub", pki("sa.pub"),
		certs.AdminConf, kubeconf(certs.AdminConf),
		certs.SuperAdminConf, kubeconf(certs.SuperAdminConf),
		certs.ControllerManagerConf, kubeconf(certs.ControllerManagerConf),
		certs.SchedulerConf, kubeconf(certs.SchedulerConf),
	}
	pairs = append(pairs, pair(path.Join(certs.NodesDir, h.Name(), certs.PKIDir), PKIDir, certs.APIServerName)...)
	for _, base := range []string{certs.APIServerKubeletClient, certs.APIServerEtcdClient, certs.FrontProxyClient} {
		pairs = append(pairs, pair("pki", PKIDir, base)...)
	}
	if p.env.encrypts() {
		pairs = append(pairs, certs.EncryptionConfigPath(), EncryptionConfigFile)
	}
	files, err := p.env.pkiFiles(pairs...)
	if err != nil {
		return nil, err
	}
	own := host.FileMode{Perm: 0o600}
	admission, err := admissionConfig(p.env.Cluster.Spec.Security.PodSecurity)
	if err != nil {
		return nil, err
	}
	authn, err := authenticationConfig()
	if err != nil {
		return nil, err
	}
	files = append(files, File{Path: AdmissionConfigFile, Data: admission, Mode: own}, File{Path: AuthenticationConfigFile, Data: authn, Mode: own})
	if !p.env.Cluster.Spec.Security.AuditOn() {
		return files, nil
	}
	policy, err := templates.Render("audit/audit-policy.yaml.tmpl", nil)
	if err != nil {
		return nil, err
	}
	return append(files, File{Path: AuditPolicyFile, Data: policy, Mode: own}), nil
}

func (p *controlPlanePhase) apiServer(h *host.Host, files []File) (Service, error) {
	c := p.env.Cluster
	port := strconv.Itoa(c.Spec.ControlPlane.Port)
	m := map[string]string{
		"advertise-address":  h.Spec.ClusterAddress().String(),
		"secure-port":        port,
		"allow-privileged":   "true",
		"authorization-mode": "Node,RBAC",
		// DenyServiceExternalIPs: no Service may claim an external IP
		// (CVE-2020-8554, a user intercepting others' traffic).
		"enable-admission-plugins":           "NodeRestriction,DenyServiceExternalIPs",
		"enable-bootstrap-token-auth":        "true",
		"client-ca-file":                     pki("ca.crt"),
		"tls-cert-file":                      pki("apiserver.crt"),
		"tls-private-key-file":               pki("apiserver.key"),
		"kubelet-client-certificate":         pki("apiserver-kubelet-client.crt"),
		"kubelet-client-key":                 pki("apiserver-kubelet-client.key"),
		"kubelet-preferred-address-types":    "InternalIP,ExternalIP,Hostname",
		"etcd-servers":                       etcdServers(c, h.Spec),
		"etcd-cafile":                        pki("etcd/ca.crt"),
		"etcd-certfile":                      pki("apiserver-etcd-client.crt"),
		"etcd-keyfile":                       pki("apiserver-etcd-client.key"),
		"proxy-client-cert-file":             pki("front-proxy-client.crt"),
		"proxy-client-key-file":              pki("front-proxy-client.key"),
		"requestheader-client-ca-file":       pki("front-proxy-ca.crt"),
		"requestheader-allowed-names":        certs.FrontProxyClientCN,
		"requestheader-username-headers":     "X-Remote-User",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"service-account-issuer":             "https://kubernetes.default.svc." + c.Spec.Networking.DNSDomain,
		"service-account-key-file":           pki("sa.pub"),
		"service-account-signing-key-file":   pki("sa.key"),
		"service-cluster-ip-range":           c.Spec.Networking.ServiceCIDR,
		// Hardening: no profiling endpoint, service account tokens not
		// extended past their expiry, TLS 1.2 or newer with strong
		// suites, every request audited, and the kubelets' serving
		// certificates checked against the cluster CA, which signs them
		// all (serverTLSBootstrap, approved after their names are
		// checked): logs, exec and port-forward reach only the real node.
		"profiling":                               "false",
		"kubelet-certificate-authority":           pki("ca.crt"),
		"service-account-extend-token-expiration": "false",
		"tls-min-version":                         "VersionTLS12",
		"tls-cipher-suites":                       strings.Join(tlsCipherSuites(), ","),
		// Pod Security Admission's default; anonymous requests only to
		// the health checks and cluster-info.
		"admission-control-config-file": AdmissionConfigFile,
		"authentication-config":         AuthenticationConfigFile,
	}
	if c.Spec.Security.AuditOn() {
		m["audit-policy-file"] = AuditPolicyFile
		m["audit-log-path"] = AuditLog
		m["audit-log-maxage"] = auditLogMaxAge
		m["audit-log-maxbackup"] = auditLogMaxBackup
		m["audit-log-maxsize"] = strconv.Itoa(c.Spec.Security.Audit.MaxSize)
	}
	if p.env.encrypts() {
		// Reloaded when it changes (within a minute): a key rotation
		// restarts nothing.
		m["encryption-provider-config"] = EncryptionConfigFile
		m["encryption-provider-config-automatic-reload"] = "true"
	}
	args := flags(m)
	u, err := unit{
		Description: "kube-apiserver: the Kubernetes API",
		After:       []string{"network-online.target", "etcd.service"},
		Wants:       []string{"network-online.target"},
		Type:        "notify",
		Environment: []string{"KUBEFORGE_BINARY=" + binaryID(p.env, "kube-apiserver")},
		Exec:        bin("kube-apiserver"),
		Args:        args,
		LimitNOFILE: 65536,
		// Its graceful shutdown waits up to 60s for connections that never
		// go idle; a static pod is killed after 30s, this after 20s.
		TimeoutStopSec: "20s",
	}.render()
	return Service{Name: "kube-apiserver", Unit: u, Inputs: inputsUnder(files, PKIDir+"/", AuditPolicyFile, AdmissionConfigFile, AuthenticationConfigFile)}, err
}

// inputsUnder are the files among files whose path starts with prefix.
func inputsUnder(files []File, prefixes ...string) []string {
	var out []string
	for _, f := range files {
		for _, p := range prefixes {
			if strings.HasPrefix(f.Path, p) {
				out = append(out, f.Path)
				break
			}
		}
	}
	return out
}

func (p *controlPlanePhase) controllers(files []File) ([]Service, error) {
	c := p.env.Cluster
	cm := flags(map[string]string{
		"allocate-node-cidrs":              "true",
		"cluster-cidr":                     c.Spec.Networking.PodCIDR,
		"node-cidr-mask-size":              "24",
		"service-cluster-ip-range":         c.Spec.Networking.ServiceCIDR,
		"cluster-name":                     c.Metadata.Name,
		"cluster-signing-cert-file":        pki("ca.crt"),
		"cluster-signing-key-file":         pki("ca.key"),
		"cluster-signing-duration":         c.Spec.Certificates.KubeletValidity.Duration.String(),
		"controllers":                      "*,bootstrapsigner,tokencleaner",
		"kubeconfig":                       kubeconf(certs.ControllerManagerConf),
		"authentication-kubeconfig":        kubeconf(certs.ControllerManagerConf),
		"authorization-kubeconfig":         kubeconf(certs.ControllerManagerConf),
		"bind-address":                     "127.0.0.1",
		"client-ca-file":                   pki("ca.crt"),
		"requestheader-client-ca-file":     pki("front-proxy-ca.crt"),
		"root-ca-file":                     pki("ca.crt"),
		"service-account-private-key-file": pki("sa.key"),
		"use-service-account-credentials":  "true",
		"leader-elect":                     "true",
		"profiling":                        "false",
		// Upstream's default, said out loud (the CIS benchmark asks
		// for the flag): finished pods beyond it are deleted.
		"terminated-pod-gc-threshold": "12500",
		// Upstream's 20/s (burst 30) is one limiter for the requests that
		// give each controller its own service account and token (four
		// each, one controller after the other, before any runs): on a
		// new cluster that alone held every controller back 5 s. OpenShift
		// runs its controller-manager at 150/300; API priority and
		// fairness still guards the API servers.
		"kube-api-qps":   "100",
		"kube-api-burst": "200",
	})
	sched := flags(map[string]string{
		"kubeconfig":                kubeconf(certs.SchedulerConf),
		"authentication-kubeconfig": kubeconf(certs.SchedulerConf),
		"authorization-kubeconfig":  kubeconf(certs.SchedulerConf),
		"bind-address":              "127.0.0.1",
		"leader-elect":              "true",
		"profiling":                 "false",
	})
	// Each restarts for what it reads: renewing admin.conf restarts none.
	cmInputs := inputsUnder(files, kubeconf(certs.ControllerManagerConf), pki("ca."), pki("sa."), pki("front-proxy-ca.crt"))
	var out []Service
	for _, s := range []struct {
		name, desc string
		args       []string
		inputs     []string
	}{
		{"kube-controller-manager", "kube-controller-manager: the Kubernetes controllers", cm, cmInputs},
		{"kube-scheduler", "kube-scheduler: places pods on nodes", sched, inputsUnder(files, kubeconf(certs.SchedulerConf))},
	} {
		u, err := unit{
			Description: s.desc,
			After:       []string{"kube-apiserver.service"},
			Environment: []string{"KUBEFORGE_BINARY=" + binaryID(p.env, s.name)},
			Exec:        bin(s.name),
			Args:        s.args,
		}.render()
		if err != nil {
			return nil, err
		}
		out = append(out, Service{Name: s.name, Unit: u, Inputs: s.inputs})
	}
	return out, nil
}

func (p *controlPlanePhase) desired(h *host.Host) (api, ctrl Desired, err error) {
	files, err := p.files(h)
	if err != nil {
		return api, ctrl, err
	}
	apiSvc, err := p.apiServer(h, files)
	if err != nil {
		return api, ctrl, err
	}
	ctrlSvcs, err := p.controllers(files)
	if err != nil {
		return api, ctrl, err
	}
	return Desired{Files: files, Services: []Service{apiSvc}}, Desired{Services: ctrlSvcs}, nil
}

func (p *controlPlanePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	api, ctrl, err := p.desired(h)
	if err != nil {
		return nil, err
	}
	a, err := api.Diff(ctx, h)
	if err != nil {
		return nil, err
	}
	// The controllers' certificates and kubeconfigs are written with the
	// API server's files.
	b, err := ctrl.Diff(ctx, h, a.Files...)
	if err != nil {
		return nil, err
	}
	return append(a.Lines(), b.Lines()...), nil
}

func (p *controlPlanePhase) Run(ctx context.Context, h *host.Host) error {
	api, ctrl, err := p.desired(h)
	if err != nil {
		return err
	}
	changed, err := api.Apply(ctx, h)
	if err != nil {
		return err
	}
	if err := p.env.Client.WaitAPIServer(ctx, h, 3*time.Minute); err != nil {
		return err
	}
	if _, err := ctrl.Apply(ctx, h, changed.Files...); err != nil {
		return err
	}
	if p.deferHealth {
		return nil
	}
	return p.env.Client.WaitControllers(ctx, h, 2*time.Minute)
}
