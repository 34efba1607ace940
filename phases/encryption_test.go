package phases

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// secrets-rewrite rewrites what etcd holds under another key or in
// plaintext, and nothing else.
func TestSecretsRewriteFindsStale(t *testing.T) {
	env := etcdEnv(t)
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if _, err := certs.EnsureEncryption(env.StateDir.PKI(), now, false, false); err != nil {
		t.Fatal(err)
	}
	e, _ := certs.ReadEncryption(env.StateDir.PKI())
	old, _ := e.Writer()
	if _, err := e.AddKey(now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.PromoteNewest()
	if _, err := certs.WriteEncryption(env.StateDir.PKI(), e); err != nil {
		t.Fatal(err)
	}
	writer, _ := e.Writer()
	fake := &etcdHost{}
	fake.etcd.stored = map[string][]byte{
		"/registry/secrets/kube-system/new": []byte(writer.StoragePrefix()),
		"/registry/secrets/default/old":     []byte(old.StoragePrefix()),
		"/registry/secrets/default/plain":   []byte("k8s\x00\n\x0c\n\x02v1\x12\x06Secret"),
	}
	env.Client = cluster.New(cluster.Options{Cluster: env.Cluster,
		Connect: func(_ context.Context, spec *config.Host) (*host.Host, error) { return host.New(spec, fake), nil },
		NewEtcd: func(context.Context, *host.Host, []string) (cluster.Etcd, error) { return &fake.etcd, nil }})
	p := &secretsRewritePhase{env: env}
	if err := p.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	stale, total, err := p.stale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if w := p.writer; w.Name != writer.Name || total != 3 || !slices.Equal(stale, []string{"default/old", "default/plain"}) {
		t.Errorf("writer %s, %d Secrets, stale %v; want %s, 3, [default/old default/plain]", w.Name, total, stale, writer.Name)
	}
}
