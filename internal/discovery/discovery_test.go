package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
)

const (
	tokenID     = "abcdef"
	tokenSecret = "s3cr3tzzs3cr3tzz" // must never show in an error
	published   = "https://172.30.0.100:6443"
)

var token = bootstraptoken.Token{ID: tokenID, Secret: tokenSecret}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	hash string
}

var serial atomic.Int64

func newCA(t *testing.T, cn string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), hash: bootstraptoken.HashOf(cert)}
}

// serving issues a server certificate for the given IPs and DNS names.
func (ca testCA) serving(t *testing.T, ips []net.IP, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips, DNSNames: names}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

func kubeconfig(t *testing.T, server string, caPEM []byte) string {
	t.Helper()
	b, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: server, CertificateAuthorityData: caPEM},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sign(t *testing.T, kc, id, secret string) string {
	t.Helper()
	s, err := jws.ComputeDetachedSignature(kc, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clusterInfo is the ConfigMap JSON with the kubeconfig signed by each
// id → secret.
func clusterInfo(t *testing.T, kc string, signers map[string]string) []byte {
	t.Helper()
	cm := corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"},
		Data:       map[string]string{"kubeconfig": kc},
	}
	for id, secret := range signers {
		cm.Data["jws-kubeconfig-"+id] = sign(t, kc, id, secret)
	}
	b, err := json.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fake is an API server answering cluster-info with answers[n] on its nth
// request (the last one repeated).
type fake struct {
	srv      *httptest.Server
	requests atomic.Int32
	bad      atomic.Value // string: what a request did wrong
}

func serve(t *testing.T, l net.Listener, cert *tls.Certificate, answer func(n int, w http.ResponseWriter)) *fake {
	t.Helper()
	f := &fake{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(f.requests.Add(1))
		switch {
		case r.URL.Path != clusterInfoPath || r.Method != http.MethodGet:
			f.bad.Store(r.Method + " " + r.URL.Path)
		case r.Header.Get("Authorization") != "" || len(r.TLS.PeerCertificates) > 0:
			f.bad.Store("credentials sent")
		}
		answer(n, w)
	}))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	if l != nil {
		f.srv.Listener.Close()
		f.srv.Listener = l
	}
	if cert != nil {
		f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}, ClientAuth: tls.RequestClientCert}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) endpoint() string { return f.srv.Listener.Addr().String() }

func (f *fake) check(t *testing.T, wantRequests int) {
	t.Helper()
	if b, _ := f.bad.Load().(string); b != "" {
		t.Errorf("bad request: %s", b)
	}
	if n := int(f.requests.Load()); n != wantRequests {
		t.Errorf("%d requests, want %d", n, wantRequests)
	}
}

func body(b []byte) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
}

func TestDiscover(t *testing.T) {
	ca := newCA(t, "kubernetes")
	other := newCA(t, "other")
	bundle := append(append([]byte{}, other.pem...), ca.pem...)

	type tc struct {
		name     string
		listen   string // "" is 127.0.0.1:0
		cert     tls.Certificate
		caPEM    []byte
		hashes   []string
		endpoint func(addr string) string // nil: addr
		dial     bool                     // route the endpoint to the server
		want     string
	}
	cases := []tc{
		{name: "ip", cert: ca.serving(t, loopback), caPEM: ca.pem, hashes: []string{ca.hash}, want: ca.hash},
		{name: "second hash matches second CA of bundle", cert: ca.serving(t, loopback), caPEM: bundle,
			hashes: []string{newCA(t, "x").hash, ca.hash}, want: ca.hash},
		{name: "dns name is the server name", cert: ca.serving(t, nil, "cluster.example"), caPEM: ca.pem, hashes: []string{ca.hash},
			endpoint: func(string) string { return "cluster.example:6443" }, dial: true, want: ca.hash},
		{name: "ipv6", listen: "[::1]:0", cert: ca.serving(t, []net.IP{net.IPv6loopback}), caPEM: ca.pem, hashes: []string{ca.hash}, want: ca.hash},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var l net.Listener
			if c.listen != "" {
				var err error
				if l, err = net.Listen("tcp", c.listen); err != nil {
					t.Skipf("no %s: %v", c.listen, err)
				}
			}
			f := serve(t, l, &c.cert, body(clusterInfo(t, kubeconfig(t, published, c.caPEM), map[string]string{tokenID: tokenSecret, "zzzzzz": "0123456789abcdef"})))
			req := Request{Endpoint: f.endpoint(), Token: token, CACertHashes: c.hashes, Timeout: time.Second}
			if c.endpoint != nil {
				req.Endpoint = c.endpoint(f.endpoint())
			}
			if c.dial {
				req.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					if addr != req.Endpoint {
						return nil, errors.New("unexpected dial " + addr)
					}
					return (&net.Dialer{}).DialContext(ctx, network, f.endpoint())
				}
			}
			res, err := Discover(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Server != published || string(res.CAPEM) != string(c.caPEM) || res.CAHash != c.want {
				t.Errorf("got %s %s\n%s", res.Server, res.CAHash, res.CAPEM)
			}
			f.check(t, 2)
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	ca := newCA(t, "kubernetes")
	other := newCA(t, "other")
	good := ca.serving(t, loopback)
	kc := kubeconfig(t, published, ca.pem)
	signed := clusterInfo(t, kc, map[string]string{tokenID: tokenSecret})
	status := func(code int, b string) func(int, http.ResponseWriter) {
		return func(_ int, w http.ResponseWriter) {
			if code == http.StatusFound {
				w.Header().Set("Location", "https://example.com/")
			}
			w.WriteHeader(code)
			io.WriteString(w, b)
		}
	}

	type tc struct {
		name     string
		cert     *tls.Certificate // nil: httptest's own, not signed by ca
		answer   func(int, http.ResponseWriter)
		hashes   []string // nil: ca.hash
		timeout  time.Duration
		down     bool
		reason   Reason
		requests int
		want     []string
	}
	cases := []tc{
		{name: "unknown token id", cert: &good, answer: body(clusterInfo(t, kc, map[string]string{"zzzzzz": tokenSecret})),
			reason: UnknownToken, requests: 1, want: []string{`token "abcdef" is not known to the cluster at `, "expired or was deleted", "kubeforge token create --print-join-command"}},
		{name: "wrong secret", cert: &good, answer: body(clusterInfo(t, kc, map[string]string{tokenID: "0123456789abcdef"})),
			reason: BadToken, requests: 1, want: []string{`token "abcdef"`, "does not verify"}},
		{name: "ca hash mismatch", cert: &good, answer: body(signed), hashes: []string{other.hash},
			reason: CAHashMismatch, requests: 1, want: []string{"presents a CA with hash " + ca.hash, "(" + other.hash + ")", "check the value"}},
		{name: "404", cert: &good, answer: status(http.StatusNotFound, `{"kind":"Status","code":404}`),
			reason: NotACluster, requests: 1, want: []string{"HTTP 404 Not Found"}},
		{name: "401", cert: &good, answer: status(http.StatusUnauthorized, ""),
			reason: NotACluster, requests: 1, want: []string{"HTTP 401", "anonymous"}},
		{name: "redirect not followed", cert: &good, answer: status(http.StatusFound, ""),
			reason: NotACluster, requests: 1, want: []string{"HTTP 302"}},
		{name: "not json", cert: &good, answer: status(http.StatusOK, "<html>hello</html>"),
			reason: NotACluster, requests: 1, want: []string{"not a JSON object"}},
		{name: "not a configmap", cert: &good, answer: body([]byte(`{"kind":"Status","apiVersion":"v1"}`)),
			reason: NotACluster, requests: 1, want: []string{`kind "Status"`}},
		{name: "no kubeconfig key", cert: &good, answer: body([]byte(`{"kind":"ConfigMap","apiVersion":"v1","data":{"jws-kubeconfig-abcdef":"x..y"}}`)),
			reason: NotACluster, requests: 1, want: []string{"no kubeconfig key"}},
		{name: "kubeconfig not yaml", cert: &good, answer: body(clusterInfo(t, "{{{", map[string]string{tokenID: tokenSecret})),
			reason: NotACluster, requests: 1, want: []string{"kubeconfig is unusable"}},
		{name: "kubeconfig without ca", cert: &good, answer: body(clusterInfo(t, kubeconfig(t, published, nil), map[string]string{tokenID: tokenSecret})),
			reason: NotACluster, requests: 1, want: []string{"no certificate-authority-data"}},
		{name: "kubeconfig with http server", cert: &good, answer: body(clusterInfo(t, kubeconfig(t, "http://10.0.0.1:8080", ca.pem), map[string]string{tokenID: tokenSecret})),
			reason: NotACluster, requests: 1, want: []string{"not an https:// URL"}},
		{name: "too large", cert: &good, answer: status(http.StatusOK, `{"kind":"ConfigMap","data":{"x":"`+strings.Repeat("a", maxResponseBytes)+`"}}`),
			reason: NotACluster, requests: 1, want: []string{"larger than"}},
		{name: "endpoint down", down: true,
			reason: Unreachable, want: []string{"does not answer: ", "connection refused", "check the address and port, and that this machine can reach it"}},
		{name: "timeout", cert: &good, timeout: 100 * time.Millisecond, answer: nil,
			reason: Unreachable, requests: 1, want: []string{"does not answer: no answer within 100ms: context deadline exceeded"}},
		{name: "server certificate not signed by the advertised ca", cert: nil, answer: body(signed),
			reason: NotTrusted, requests: 1, want: []string{"cannot be trusted", "certificate signed by unknown authority"}},
		{name: "server certificate for another name", cert: ptr(ca.serving(t, []net.IP{net.ParseIP("10.1.1.1")}, "other.example")), answer: body(signed),
			reason: NotTrusted, requests: 1, want: []string{"cannot be trusted", "valid for 10.1.1.1, not 127.0.0.1"}},
		{name: "verified answer differs", cert: &good, answer: func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.Write(signed)
				return
			}
			w.Write(clusterInfo(t, kubeconfig(t, "https://10.9.9.9:6443", ca.pem), map[string]string{tokenID: tokenSecret}))
		}, reason: NotTrusted, requests: 2, want: []string{"differs"}},
		{name: "verified answer not a configmap", cert: &good, answer: func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.Write(signed)
				return
			}
			w.WriteHeader(http.StatusNotFound)
		}, reason: NotTrusted, requests: 2, want: []string{"HTTP 404"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f *fake
			var endpoint string
			switch {
			case c.down:
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				endpoint = l.Addr().String()
				l.Close()
			case c.answer == nil: // hang until the client gives up
				done := make(chan struct{})
				f = serve(t, nil, c.cert, func(int, http.ResponseWriter) { <-done })
				t.Cleanup(func() { close(done) }) // runs before f.srv.Close
				endpoint = f.endpoint()
			default:
				f = serve(t, nil, c.cert, c.answer)
				endpoint = f.endpoint()
			}
			hashes := c.hashes
			if hashes == nil {
				hashes = []string{ca.hash}
			}
			timeout := c.timeout
			if timeout == 0 {
				timeout = time.Second
			}
			_, err := Discover(context.Background(), Request{Endpoint: endpoint, Token: token, CACertHashes: hashes, Timeout: timeout})
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("want *Error %s, got %v", c.reason, err)
			}
			if de.Reason != c.reason || de.Endpoint != endpoint {
				t.Errorf("reason %s endpoint %s, want %s %s: %v", de.Reason, de.Endpoint, c.reason, endpoint, err)
			}
			msg := err.Error()
			for _, w := range append(c.want, endpoint) {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, tokenSecret) {
				t.Errorf("secret in %q", msg)
			}
			if f != nil {
				f.check(t, c.requests)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestNotTrustedKeepsCause(t *testing.T) {
	ca := newCA(t, "kubernetes")
	f := serve(t, nil, nil, body(clusterInfo(t, kubeconfig(t, published, ca.pem), map[string]string{tokenID: tokenSecret})))
	_, err := Discover(context.Background(), Request{Endpoint: f.endpoint(), Token: token, CACertHashes: []string{ca.hash}, Timeout: time.Second})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("want an x509.UnknownAuthorityError in %v", err)
	}
}

func TestRefusedBeforeTraffic(t *testing.T) {
	ca := newCA(t, "kubernetes")
	good := Request{Endpoint: "10.0.0.1:6443", Token: token, CACertHashes: []string{ca.hash}}
	type tc struct {
		name string
		mod  func(*Request)
		want string
	}
	var cases []tc
	for _, e := range []string{"", "10.0.0.1", "10.0.0.1:", ":6443", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:-1", "10.0.0.1:+1",
		"10.0.0.1:https", "https://10.0.0.1:6443", "::1:6443", "[::1]", "::1", "[10.0.0.1]:6443", "[cp.example]:6443",
		"fe80::1%eth0:6443", "[fe80::1%eth0]:6443", "bad_host:6443", "-a.example:6443", "a-.example:6443", "a..example:6443",
		"300.1.1.1:6443", "10.0.0.1.:6443", "cp example:6443", "cp.example/x:6443", strings.Repeat("a", 64) + ".example:6443",
		"10.0.0.1:6443\n", "10.0.0.1:6443:1"} {
		cases = append(cases, tc{name: "endpoint " + e, mod: func(r *Request) { r.Endpoint = e }, want: "ENDPOINT"})
	}
	cases = append(cases,
		tc{name: "no hash", mod: func(r *Request) { r.CACertHashes = nil }, want: "--discovery-token-ca-cert-hash"},
		tc{name: "bad hash", mod: func(r *Request) { r.CACertHashes = []string{"sha256:abc"} }, want: "--discovery-token-ca-cert-hash"},
		tc{name: "bad token", mod: func(r *Request) { r.Token.Secret = "SHORT" }, want: "token"},
		tc{name: "no token", mod: func(r *Request) { r.Token = bootstraptoken.Token{} }, want: "token"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := good
			dialed := false
			req.DialContext = func(context.Context, string, string) (net.Conn, error) {
				dialed = true
				return nil, errors.New("no traffic expected")
			}
			c.mod(&req)
			_, err := Discover(context.Background(), req)
			var de *Error
			if err == nil || errors.As(err, &de) {
				t.Fatalf("want a plain error, got %v", err)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), tokenSecret) {
				t.Errorf("message %q", err)
			}
			if dialed {
				t.Errorf("dialed")
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	for e, want := range map[string][2]string{
		"10.0.0.1:6443":          {"10.0.0.1", "6443"},
		"[::1]:6443":             {"::1", "6443"},
		"[fd00::1]:65535":        {"fd00::1", "65535"},
		"[::ffff:10.0.0.1]:1":    {"::ffff:10.0.0.1", "1"},
		"localhost:443":          {"localhost", "443"},
		"cp-1.k8s.example:6443":  {"cp-1.k8s.example", "6443"},
		"cp-1.k8s.example.:6443": {"cp-1.k8s.example.", "6443"},
		"1cp.example:6443":       {"1cp.example", "6443"},
	} {
		h, p, err := ParseEndpoint(e)
		if err != nil || h != want[0] || p != want[1] {
			t.Errorf("%s: %s %s %v", e, h, p, err)
		}
	}
}

func TestCanceled(t *testing.T) {
	ca := newCA(t, "kubernetes")
	f := serve(t, nil, ptr(ca.serving(t, loopback)), body(clusterInfo(t, kubeconfig(t, published, ca.pem), map[string]string{tokenID: tokenSecret})))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Discover(ctx, Request{Endpoint: f.endpoint(), Token: token, CACertHashes: []string{ca.hash}})
	var de *Error
	if !errors.Is(err, context.Canceled) || errors.As(err, &de) {
		t.Fatalf("got %v", err)
	}
}

func TestMessages(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.1:6443: connect: connection refused")
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{&Error{Reason: UnknownToken, Endpoint: "10.0.0.1:6443", TokenID: "abcdef"},
			`token "abcdef" is not known to the cluster at 10.0.0.1:6443: it expired or was deleted; create a new one with 'kubeforge token create --print-join-command' on the admin machine`},
		{&Error{Reason: CAHashMismatch, Endpoint: "10.0.0.1:6443", Found: []string{"sha256:aa"}, Given: []string{"sha256:bb", "sha256:cc"}},
			`the cluster at 10.0.0.1:6443 presents a CA with hash sha256:aa, not the --discovery-token-ca-cert-hash given (sha256:bb, sha256:cc): check the value, or get it with 'kubeforge token create --print-join-command'`},
		{&Error{Reason: Unreachable, Endpoint: "10.0.0.1:6443", Err: cause},
			`the API server at 10.0.0.1:6443 does not answer: dial tcp 10.0.0.1:6443: connect: connection refused: check the address and port, and that this machine can reach it`},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
	if e := (&Error{Reason: Unreachable, Err: cause}); !errors.Is(e, cause) {
		t.Errorf("Unwrap")
	}
}
