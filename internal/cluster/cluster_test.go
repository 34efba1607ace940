package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

func testCluster(t *testing.T) *config.Cluster {
	t.Helper()
	c, _, err := config.Parse("test", []byte(`apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: t}
spec:
  hosts:
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - {name: w1, address: 192.0.2.12, roles: [worker]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeClient asks api, a fake clientset, as the admin.
func fakeClient(t *testing.T, api kubernetes.Interface) *Client {
	c := testCluster(t)
	return New(Options{Cluster: c, Admin: true,
		Connect: func(_ context.Context, spec *config.Host) (*host.Host, error) { return host.New(spec, nil), nil },
		NewAPI:  func(*host.Host) (kubernetes.Interface, error) { return api, nil }})
}

func csrPEM(t *testing.T, cn string, dns []string, ips ...string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestCheckServingCSR(t *testing.T) {
	w1 := testCluster(t).Host("w1")
	if err := CheckServingCSR(csrPEM(t, "system:node:w1", []string{"w1"}, "192.0.2.12"), w1); err != nil {
		t.Fatalf("the node's own request refused: %v", err)
	}
	for name, req := range map[string][]byte{
		"another node's name": csrPEM(t, "system:node:cp1", []string{"cp1"}, "192.0.2.11"),
		"a foreign DNS name":  csrPEM(t, "system:node:w1", []string{"w1", "bank.example.com"}, "192.0.2.12"),
		"a foreign address":   csrPEM(t, "system:node:w1", []string{"w1"}, "192.0.2.12", "203.0.113.5"),
		"garbage":             []byte("not pem"),
	} {
		if err := CheckServingCSR(req, w1); err == nil {
			t.Errorf("%s: approved", name)
		}
	}
}

// Only pending kubelet-serving requests of the file's nodes, naming only
// themselves, are approved; the others are named with why.
func TestApproveServingCSRs(t *testing.T) {
	csr := func(name, user, signer string, req []byte) *certificatesv1.CertificateSigningRequest {
		return &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certificatesv1.CertificateSigningRequestSpec{SignerName: signer, Username: user, Request: req}}
	}
	api := fake.NewClientset(
		csr("good", "system:node:w1", KubeletServingSigner, csrPEM(t, "system:node:w1", []string{"w1"}, "192.0.2.12")),
		csr("foreign", "system:node:w1", KubeletServingSigner, csrPEM(t, "system:node:w1", []string{"evil.example.com"})),
		csr("stranger", "system:node:x9", KubeletServingSigner, csrPEM(t, "system:node:x9", nil)),
		csr("client", "system:node:w1", "kubernetes.io/kube-apiserver-client-kubelet", csrPEM(t, "system:node:w1", nil)),
	)
	approved, refused, err := fakeClient(t, api).ApproveServingCSRs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(approved) != 1 || approved[0] != "good" || len(refused) != 2 {
		t.Fatalf("approved %v, refused %v", approved, refused)
	}
	got, _ := api.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "good", metav1.GetOptions{})
	if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Type != certificatesv1.CertificateApproved {
		t.Errorf("good: %+v", got.Status)
	}
}

func pod(name string, owner string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)}, Spec: corev1.PodSpec{NodeName: "w1"}}
	if owner != "" {
		t := true
		p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "x", Controller: &t}}
	}
	return p
}

// A drain evicts through the eviction API (a budget that refuses is
// retried), leaves DaemonSet pods, refuses pods no controller manages
// unless forced, and cordons the node in any case.
func TestDrain(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}
	api := fake.NewClientset(node, pod("web-1", "ReplicaSet"), pod("agent", "DaemonSet"), pod("lonely", ""))
	refusals := 2
	api.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		e := a.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction)
		if e.Name == "web-1" && refusals > 0 {
			refusals--
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 1)
		}
		return true, nil, api.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, e.Namespace, e.Name)
	})
	c := fakeClient(t, api)
	err := c.Drain(context.Background(), "w1", DrainOptions{Timeout: 10 * time.Second})
	var de *DrainError
	if !errors.As(err, &de) || len(de.Unmanaged) != 1 || de.Unmanaged[0] != "default/lonely" || !errors.Is(err, ErrRefused) {
		t.Fatalf("unmanaged pod: %v", err)
	}
	if n, _ := api.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{}); !n.Spec.Unschedulable {
		t.Error("not cordoned")
	}
	if err := c.Drain(context.Background(), "w1", DrainOptions{Timeout: 20 * time.Second, Force: true}); err != nil {
		t.Fatal(err)
	}
	left, _ := api.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if len(left.Items) != 1 || left.Items[0].Name != "agent" || refusals != 0 {
		t.Errorf("left %v, refusals left %d", left.Items, refusals)
	}
}

// Errors are told apart by kind, never by text.
func TestErrorKinds(t *testing.T) {
	gr := schema.GroupResource{Resource: "nodes"}
	for _, tc := range []struct {
		err  error
		kind error
	}{
		{apierrors.NewNotFound(gr, "x"), ErrNotFound},
		{apierrors.NewForbidden(gr, "x", errors.New("no")), ErrForbidden},
		{apierrors.NewUnauthorized("no"), ErrForbidden},
		{apierrors.NewTooManyRequests("budget", 1), ErrRefused},
		{apierrors.NewServiceUnavailable("starting"), ErrUnavailable},
		{rpctypes.ErrGRPCUnhealthy, ErrUnavailable},
		{rpctypes.ErrGRPCMemberNotEnoughStarted, ErrUnavailable},
		{rpctypes.ErrGRPCPeerURLExist, ErrRefused},
		{rpctypes.ErrGRPCMemberNotFound, ErrNotFound},
		{fmt.Errorf("dial: %w", host.ErrNotListening), ErrUnreachable},
		{context.DeadlineExceeded, ErrUnreachable},
	} {
		err := wrap("ask", tc.err)
		if !errors.Is(err, tc.kind) || !strings.HasPrefix(err.Error(), "ask: ") {
			t.Errorf("%v: %v, want kind %v", tc.err, err, tc.kind)
		}
	}
	if IsUnauthorized(wrap("ask", apierrors.NewForbidden(gr, "x", errors.New("no")))) {
		t.Error("403 taken for 401")
	}
}

func TestConfigHash(t *testing.T) {
	metrics := `# HELP apiserver_encryption_config_controller_last_config_info [ALPHA] Information about the last applied encryption configuration with hash as label, split by apiserver identity.
# TYPE apiserver_encryption_config_controller_last_config_info gauge
apiserver_encryption_config_controller_last_config_info{apiserver_id_hash="sha256:aaaa",hash="sha256:bbbb"} 1
apiserver_request_total{code="200"} 3
`
	if got := configHash(metrics); got != "sha256:bbbb" {
		t.Errorf("configHash = %q, want sha256:bbbb", got)
	}
	if got := configHash("apiserver_request_total 1\n"); got != "" {
		t.Errorf("no metric, yet %q", got)
	}
}

// Hold keeps the Lease renewed while the client is open, so a second
// holder waits (and is refused at its deadline), and gives it back on
// Close.
func TestHoldRenewsAndReleases(t *testing.T) {
	api := fake.NewSimpleClientset()
	c := fakeClient(t, api)
	ctx := context.Background()
	if err := c.Hold(ctx, "kubeforge-upgrade", "first", 300*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	lease := func() (string, time.Time) {
		l, err := api.CoordinationV1().Leases("kube-system").Get(ctx, "kubeforge-upgrade", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *l.Spec.HolderIdentity, l.Spec.RenewTime.Time
	}
	_, taken := lease()
	time.Sleep(time.Second) // more than the ttl: renewed, or lost
	holder, renewed := lease()
	if holder != "first" || !renewed.After(taken) {
		t.Errorf("after the ttl the lease is %s's, renewed %v after it was taken", holder, renewed.Sub(taken))
	}
	if time.Since(renewed) > 300*time.Millisecond {
		t.Errorf("renewed %v ago, longer than the ttl", time.Since(renewed))
	}
	c.Close()
	if holder, _ := lease(); holder != "" {
		t.Errorf("after Close the lease is still %q's", holder)
	}
}
