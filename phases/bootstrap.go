package phases

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/templates"
)

// bootstrapPhase applies what a new cluster needs besides its components:
// the admin group's binding, RBAC for kubelet TLS bootstrap and CSR
// approval, the bootstrap token, the public cluster-info and the cluster
// description nodes joining on their own read.
type bootstrapPhase struct{ env *Env }

func (*bootstrapPhase) Title() string {
	return "Cluster bootstrap: RBAC, bootstrap token, cluster-info"
}

func (p *bootstrapPhase) manifest() ([]byte, error) {
	caPEM, err := p.env.caPEM()
	if err != nil {
		return nil, err
	}
	info := clientcmdapi.NewConfig()
	info.Clusters[""] = &clientcmdapi.Cluster{Server: p.env.Cluster.APIServerURL(), CertificateAuthorityData: caPEM}
	infoYAML, err := clientcmd.Write(*info)
	if err != nil {
		return nil, err
	}
	published, err := config.Published(p.env.Cluster)
	if err != nil {
		return nil, err
	}
	rbac, err := templates.Render("bootstrap/cluster.yaml.tmpl", map[string]any{
		"BootstrapGroup": BootstrapGroup,
		"ClusterInfo":    string(infoYAML),
		"ConfigName":     ConfigMapName,
		"ClusterConfig":  string(published),
		"CertsName":      CertsSecretName,
	})
	if err != nil {
		return nil, err
	}
	token, err := yaml.Marshal(TokenSecret(p.env.Token, "kubeforge: joins nodes to cluster "+p.env.Cluster.Metadata.Name, true))
	if err != nil {
		return nil, err
	}
	return append(append(rbac, []byte("---\n")...), token...), nil
}

func (p *bootstrapPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	m, err := p.manifest()
	if err != nil {
		return nil, err
	}
	return planManifest(ctx, h, p.env.Cluster.Spec.ControlPlane.Port, m)
}

func (p *bootstrapPhase) Run(ctx context.Context, h *host.Host) error {
	m, err := p.manifest()
	if err != nil {
		return err
	}
	return applyManifest(ctx, h, p.env.Cluster.Spec.ControlPlane.Port, m)
}

const fieldManager = "kubeforge"

// Objects in kube-system that nodes joining with a token read.
const (
	// ConfigMapName holds config.Published: the cluster without SSH.
	ConfigMapName = "kubeforge-config"
	// CertsSecretName holds the CA keys, encrypted, for control planes
	// joining on their own (init --upload-certs).
	CertsSecretName = "kubeforge-certs"
)

// applyManifest server-side-applies objects as the super-admin on the
// host's API server. The manifest goes on stdin: secrets never appear in
// a command line or a log.
func applyManifest(ctx context.Context, h *host.Host, port int, manifest []byte) error {
	_, err := h.RunWithInput(ctx, kubectlLocal(port, "apply --server-side --force-conflicts --field-manager="+fieldManager+" -f -"), manifest)
	return err
}

var diffObject = regexp.MustCompile(`(?m)^diff -u -N \S*/LIVE-\d+/(\S+)`)

// planManifest tells which objects applying the manifest would change,
// with kubectl diff (exit 1 means "differences").
func planManifest(ctx context.Context, h *host.Host, port int, manifest []byte) ([]string, error) {
	out, err := h.RunWithInput(ctx, kubectlLocal(port, "diff --server-side --force-conflicts --field-manager="+fieldManager+" -f -"), manifest)
	var ce *host.CommandError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &ce) && ce.ExitCode == 1:
		var lines []string
		for _, m := range diffObject.FindAllStringSubmatch(string(out), -1) {
			lines = append(lines, "apply "+strings.ReplaceAll(m[1], "..", " "))
		}
		if len(lines) == 0 {
			lines = []string{"apply changes"}
		}
		return lines, nil
	default:
		return []string{fmt.Sprintf("apply %d objects (the API server cannot diff them now: %v)", strings.Count(string(manifest), "\nkind: ")+1, shortErr(err))}, nil
	}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
