package phases

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/joinnode"
)

// uploadCertsPhase stores the CAs and the service-account key pair in the
// kube-system/kubeforge-certs Secret, each encrypted with AES-256-GCM under
// the certificate key, for control planes that join on their own
// (`kubeforge join ENDPOINT --control-plane --certificate-key K`). The
// Secret is owned by a bootstrap token that expires in CertsTTL: when the
// token cleaner deletes the token, the garbage collector deletes the
// Secret.
type uploadCertsPhase struct {
	env *Env
	key []byte // nil: not asked for
}

// NewUploadCerts is the upload-certs phase with the certificate key to
// encrypt with (init --upload-certs).
func NewUploadCerts(env *Env, key []byte) Phase { return &uploadCertsPhase{env: env, key: key} }

// CertsTTL is how long the uploaded certificates stay in the cluster.
const CertsTTL = joinnode.CertsTTL

func (*uploadCertsPhase) Title() string {
	return "Upload the CAs, encrypted, for control planes joining on their own"
}

func (p *uploadCertsPhase) Enabled() (bool, string) {
	if p.key == nil {
		return false, "--upload-certs not given"
	}
	return true, ""
}

// manifests are the owner token, and the Secret without its owner (which
// needs the token's uid).
func (p *uploadCertsPhase) manifests(now time.Time) (owner Token, tokenYAML []byte, secret *corev1.Secret, err error) {
	files, err := certs.ReadShared(p.env.StateDir.PKI())
	if err != nil {
		return owner, nil, nil, err
	}
	secret = &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: CertsSecretName, Namespace: "kube-system"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{},
	}
	for rel, data := range files {
		sealed, err := certs.Seal(p.key, data)
		if err != nil {
			return owner, nil, nil, err
		}
		secret.Data[certs.SharedKey(rel)] = sealed
	}
	owner = bootstraptoken.New(now, CertsTTL)
	tokenYAML, err = yaml.Marshal(TokenSecret(owner, "kubeforge: owns the "+CertsSecretName+" Secret, which goes when this token expires", false))
	return owner, tokenYAML, secret, err
}

func (p *uploadCertsPhase) Plan(context.Context, *host.Host) ([]string, error) {
	return []string{fmt.Sprintf("store %d files, encrypted, in kube-system/%s for %s", len(certs.SharedFiles()), CertsSecretName, CertsTTL)}, nil
}

func (p *uploadCertsPhase) Run(ctx context.Context, _ *host.Host) error {
	owner, tokenYAML, secret, err := p.manifests(time.Now())
	if err != nil {
		return err
	}
	if err := p.env.Client.Apply(ctx, tokenYAML); err != nil {
		return fmt.Errorf("create the owner token: %w", err)
	}
	ownerSecret, err := p.env.Client.Secret(ctx, "kube-system", bootstraptoken.SecretName(owner.ID))
	if err != nil {
		return err
	}
	f := false
	secret.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Secret", Name: ownerSecret.Name,
		UID: ownerSecret.UID, BlockOwnerDeletion: &f}}
	data, err := yaml.Marshal(secret)
	if err != nil {
		return err
	}
	return p.env.Client.Apply(ctx, data)
}

// TokenSecret is a bootstrap token's Secret. auth: nodes may join with it
// (and the cluster-info signer signs with it).
func TokenSecret(t Token, description string, auth bool) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: bootstraptoken.SecretName(t.ID), Namespace: "kube-system"},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"description":  description,
			"token-id":     t.ID,
			"token-secret": t.Secret,
		},
	}
	if !t.Expires.IsZero() {
		s.StringData["expiration"] = t.Expires.UTC().Format(time.RFC3339)
	}
	if auth {
		s.StringData["usage-bootstrap-authentication"] = "true"
		s.StringData["usage-bootstrap-signing"] = "true"
		s.StringData["auth-extra-groups"] = BootstrapGroup
	}
	// StringData is write-only: send it as data, so a re-apply compares.
	s.Data = map[string][]byte{}
	keys := make([]string, 0, len(s.StringData))
	for k := range s.StringData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.Data[k] = []byte(s.StringData[k])
	}
	s.StringData = nil
	return s
}
