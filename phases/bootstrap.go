package phases

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/joinnode"
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

func (p *bootstrapPhase) Plan(ctx context.Context, _ *host.Host) ([]string, error) {
	m, err := p.manifest()
	if err != nil {
		return nil, err
	}
	return planManifest(ctx, p.env, m)
}

func (p *bootstrapPhase) Run(ctx context.Context, _ *host.Host) error {
	m, err := p.manifest()
	if err != nil {
		return err
	}
	return p.env.Client.Apply(ctx, m)
}

// Objects in kube-system that nodes joining with a token read.
const (
	// ConfigMapName holds config.Published: the cluster without SSH.
	ConfigMapName = joinnode.ConfigMapName
	// CertsSecretName holds the CA keys, encrypted, for control planes
	// joining on their own (init --upload-certs).
	CertsSecretName = joinnode.CertsSecretName
)

// planManifest tells which objects applying the manifest would change (a
// dry-run apply against the cluster).
func planManifest(ctx context.Context, env *Env, manifest []byte) ([]string, error) {
	changed, err := env.Client.Diff(ctx, manifest)
	if err != nil {
		return []string{fmt.Sprintf("apply %d objects (the API server cannot compare them now: %v)", strings.Count(string(manifest), "\nkind: ")+1, shortErr(err))}, nil
	}
	lines := make([]string, len(changed))
	for i, o := range changed {
		lines[i] = "apply " + o
	}
	return lines, nil
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
