// Package discovery learns a cluster's CA from its API server without
// trusting the network, with kubeadm's token-discovery semantics: the
// anonymous cluster-info ConfigMap is fetched unverified, its kubeconfig is
// authenticated by the bootstrap token's JWS signature, its CA is pinned by
// --discovery-token-ca-cert-hash, and cluster-info is fetched again over TLS
// verified against that CA.
package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
)

// DefaultTimeout bounds each HTTP request when Request.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// maxResponseBytes bounds the cluster-info response read from the endpoint.
const maxResponseBytes = 1 << 20

// clusterInfoPath is where the API server publishes cluster-info.
const clusterInfoPath = "/api/v1/namespaces/kube-public/configmaps/" + bootstrapapi.ConfigMapClusterInfo

// Request is what a joining machine knows.
type Request struct {
	Endpoint     string               // "host:port" as the user typed it; IPv6 as "[::1]:6443"
	Token        bootstraptoken.Token // ID and Secret
	CACertHashes []string             // "sha256:<64 hex>", as bootstraptoken.ParseCAHash returns
	Timeout      time.Duration        // per HTTP request; 0 means DefaultTimeout

	// DialContext, when set, opens the TCP connections of both fetches
	// instead of a net.Dialer, and no proxy is used (tests route a DNS name
	// to a loopback server with it). When nil, HTTPS_PROXY/NO_PROXY apply.
	// It replaces a caller-supplied *http.Client so that TLS stays in
	// Discover's hands: the first fetch is unverified, the second is
	// verified against the pinned CA with ServerName = the endpoint's host,
	// and no client credentials are ever sent.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is the cluster as its pinned CA vouches for it.
type Result struct {
	Server string // the API server URL the cluster publishes in cluster-info, e.g. https://172.30.0.100:6443
	CAPEM  []byte // the CA certificate(s) of cluster-info's kubeconfig, PEM, one of which is pinned
	CAHash string // the hash that matched
}

// Reason classifies an *Error.
type Reason int

const (
	Unreachable    Reason = iota + 1 // no TCP/TLS/HTTP answer from the endpoint (connection refused, timeout, DNS)
	NotACluster                      // it answered but not with a cluster-info ConfigMap (404, not JSON, no kubeconfig key, bad kubeconfig)
	UnknownToken                     // no signature for this token ID: unknown, expired or deleted
	BadToken                         // signature present but does not verify with this secret
	CAHashMismatch                   // no CA in cluster-info matches the given hashes
	NotTrusted                       // the second, verified fetch failed or differed
)

func (r Reason) String() string {
	switch r {
	case Unreachable:
		return "Unreachable"
	case NotACluster:
		return "NotACluster"
	case UnknownToken:
		return "UnknownToken"
	case BadToken:
		return "BadToken"
	case CAHashMismatch:
		return "CAHashMismatch"
	case NotTrusted:
		return "NotTrusted"
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// Error is a discovery failure the CLI maps to an exit code. It never holds
// the token secret.
type Error struct {
	Reason   Reason
	Endpoint string
	Err      error // the cause, may be nil

	TokenID string   // UnknownToken, BadToken
	Detail  string   // NotACluster, NotTrusted: what was wrong with the answer
	Given   []string // CAHashMismatch: the hashes the user gave
	Found   []string // CAHashMismatch: the hashes of the CAs in cluster-info
}

const createHint = "'kubeforge token create --print-join-command' on the admin machine"

func (e *Error) Error() string {
	cause := ""
	if e.Err != nil {
		cause = ": " + e.Err.Error()
	}
	switch e.Reason {
	case Unreachable:
		return fmt.Sprintf("the API server at %s does not answer%s: check the address and port, and that this machine can reach it",
			e.Endpoint, cause)
	case NotACluster:
		return fmt.Sprintf("%s does not serve the cluster-info ConfigMap (%s%s): check that ENDPOINT is the cluster's API server (usually port 6443) and that it allows anonymous reads of kube-public/cluster-info",
			e.Endpoint, e.Detail, cause)
	case UnknownToken:
		return fmt.Sprintf("token %q is not known to the cluster at %s: it expired or was deleted; create a new one with %s",
			e.TokenID, e.Endpoint, createHint)
	case BadToken:
		return fmt.Sprintf("the secret of token %q is wrong for the cluster at %s (its cluster-info signature does not verify): check the token, or create a new one with %s",
			e.TokenID, e.Endpoint, createHint)
	case CAHashMismatch:
		found := "a CA with hash " + strings.Join(e.Found, ", ")
		if len(e.Found) > 1 {
			found = "CAs with hashes " + strings.Join(e.Found, ", ")
		}
		return fmt.Sprintf("the cluster at %s presents %s, not the --discovery-token-ca-cert-hash given (%s): check the value, or get it with 'kubeforge token create --print-join-command'",
			e.Endpoint, found, strings.Join(e.Given, ", "))
	case NotTrusted:
		return fmt.Sprintf("the API server at %s cannot be trusted: %s%s: check that ENDPOINT is the cluster's API server (its serving certificate must be signed by the cluster CA and name this host) and that nothing intercepts the connection",
			e.Endpoint, e.Detail, cause)
	}
	return fmt.Sprintf("discovery at %s failed (%s)%s", e.Endpoint, e.Reason, cause)
}

func (e *Error) Unwrap() error { return e.Err }

// Discover fetches and authenticates the cluster's CA and server URL.
// Malformed input is refused with a plain error before any network traffic;
// a failure at the endpoint is an *Error. A done ctx is returned as a plain
// error wrapping ctx.Err().
func Discover(ctx context.Context, req Request) (*Result, error) {
	host, port, err := ParseEndpoint(req.Endpoint)
	if err != nil {
		return nil, err
	}
	if _, err := bootstraptoken.Parse(req.Token.String()); err != nil {
		return nil, fmt.Errorf("discovery token: %w", err)
	}
	if len(req.CACertHashes) == 0 {
		return nil, errors.New("no --discovery-token-ca-cert-hash given: the cluster's CA cannot be pinned")
	}
	given := make([]string, 0, len(req.CACertHashes))
	for _, h := range req.CACertHashes {
		c, err := bootstraptoken.ParseCAHash(h)
		if err != nil {
			return nil, fmt.Errorf("--discovery-token-ca-cert-hash: %w", err)
		}
		given = append(given, c)
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	u := "https://" + net.JoinHostPort(host, port) + clusterInfoPath

	// 1. Unverified, anonymous fetch.
	insecure := &tls.Config{InsecureSkipVerify: true} // authenticated below by the JWS and the CA pin
	cm, err := fetch(ctx, client(insecure, req.DialContext), u, timeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("discovery at %s: %w", req.Endpoint, ctx.Err())
		}
		var fe *fetchError
		if errors.As(err, &fe) {
			return nil, &Error{Reason: NotACluster, Endpoint: req.Endpoint, Detail: fe.detail, Err: fe.err}
		}
		return nil, &Error{Reason: Unreachable, Endpoint: req.Endpoint, Err: err}
	}
	kubeconfig := cm.Data[bootstrapapi.KubeConfigKey]
	if kubeconfig == "" {
		return nil, &Error{Reason: NotACluster, Endpoint: req.Endpoint, Detail: "the ConfigMap has no " + bootstrapapi.KubeConfigKey + " key"}
	}

	// 2. The token's signature authenticates the kubeconfig.
	sig := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+req.Token.ID]
	if sig == "" {
		return nil, &Error{Reason: UnknownToken, Endpoint: req.Endpoint, TokenID: req.Token.ID}
	}
	if !jws.DetachedTokenIsValid(sig, kubeconfig, req.Token.ID, req.Token.Secret) {
		return nil, &Error{Reason: BadToken, Endpoint: req.Endpoint, TokenID: req.Token.ID}
	}
	server, caPEM, certs, err := parseKubeconfig(kubeconfig)
	if err != nil {
		return nil, &Error{Reason: NotACluster, Endpoint: req.Endpoint, Detail: "its kubeconfig is unusable", Err: err}
	}

	// 3. Pin the CA.
	found := make([]string, 0, len(certs))
	match := ""
	for _, c := range certs {
		h := bootstraptoken.HashOf(c)
		found = append(found, h)
		if match == "" && slices.Contains(given, h) {
			match = h
		}
	}
	if match == "" {
		return nil, &Error{Reason: CAHashMismatch, Endpoint: req.Endpoint, Given: given, Found: found}
	}

	// 4. The endpoint must present a certificate the pinned CA issued for host.
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	verified := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	cm2, err := fetch(ctx, client(verified, req.DialContext), u, timeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("discovery at %s: %w", req.Endpoint, ctx.Err())
		}
		detail := "the fetch verified against the pinned CA failed"
		var fe *fetchError
		if errors.As(err, &fe) {
			detail += " (" + fe.detail + ")"
			err = fe.err
		}
		return nil, &Error{Reason: NotTrusted, Endpoint: req.Endpoint, Detail: detail, Err: err}
	}
	if cm2.Data[bootstrapapi.KubeConfigKey] != kubeconfig {
		return nil, &Error{Reason: NotTrusted, Endpoint: req.Endpoint,
			Detail: "the cluster-info fetched with verified TLS differs from the unverified one"}
	}

	return &Result{Server: server, CAPEM: caPEM, CAHash: match}, nil
}

// ParseEndpoint checks "host:port" (IPv6 as "[::1]:6443"): the port is
// 1..65535 and the host an IP address or a DNS name.
func ParseEndpoint(endpoint string) (host, port string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("ENDPOINT %q: %s; it is the API server's host:port, e.g. 10.0.0.1:6443 or [fd00::1]:6443", endpoint, why)
	}
	if strings.Contains(endpoint, "://") {
		return "", "", bad("give it without a scheme (no https://)")
	}
	host, port, err = net.SplitHostPort(endpoint)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", "", bad(ae.Err)
		}
		return "", "", bad(err.Error())
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", "", bad("the port must be a number from 1 to 65535")
	}
	if host == "" {
		return "", "", bad("no host")
	}
	bracketed := strings.HasPrefix(endpoint, "[")
	if ip := net.ParseIP(host); ip != nil {
		if v6 := strings.Contains(host, ":"); v6 != bracketed {
			return "", "", bad("an IPv6 address, and only that, goes in brackets")
		}
		return host, port, nil
	}
	if bracketed {
		return "", "", bad("only an IPv6 address goes in brackets")
	}
	if !isDNSName(host) {
		return "", "", bad("the host is neither an IP address nor a DNS name")
	}
	return host, port, nil
}

// isDNSName reports whether s is a hostname of letters, digits and hyphens
// (RFC 1123) whose last label is not all digits (that would be a bad IPv4).
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

func client(tlsConfig *tls.Config, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	t := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       (&net.Dialer{}).DialContext,
		TLSClientConfig:   tlsConfig,
		DisableKeepAlives: true,
	}
	if dial != nil {
		t.Proxy = nil
		t.DialContext = dial
	}
	return &http.Client{
		Transport: t,
		// cluster-info is never redirected; do not follow one elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fetchError is an answer that is not a cluster-info ConfigMap.
type fetchError struct {
	detail string
	err    error
}

func (e *fetchError) Error() string {
	if e.err != nil {
		return e.detail + ": " + e.err.Error()
	}
	return e.detail
}

// fetch GETs cluster-info. A *fetchError means the endpoint answered with
// something else; any other error means it did not answer.
func fetch(ctx context.Context, c *http.Client, u string, timeout time.Duration) (*corev1.ConfigMap, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "kubeforge-join")
	resp, err := c.Do(hr)
	if err != nil {
		return nil, netError(err, timeout)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, netError(err, timeout)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, &fetchError{detail: "HTTP " + resp.Status + ": anonymous requests are refused"}
	case resp.StatusCode != http.StatusOK:
		return nil, &fetchError{detail: "HTTP " + resp.Status}
	case len(body) > maxResponseBytes:
		return nil, &fetchError{detail: fmt.Sprintf("the answer is larger than %d bytes", maxResponseBytes)}
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, &fetchError{detail: "the answer is not a JSON object", err: err}
	}
	if cm.Kind != "ConfigMap" {
		return nil, &fetchError{detail: fmt.Sprintf("the answer is of kind %q, not ConfigMap", cm.Kind)}
	}
	return &cm, nil
}

// netError drops the URL wrapper (the endpoint is in the message already)
// and names the timeout.
func netError(err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return err
}

// parseKubeconfig returns the server and CA of cluster-info's kubeconfig.
func parseKubeconfig(s string) (server string, caPEM []byte, certs []*x509.Certificate, err error) {
	cfg, err := clientcmd.Load([]byte(s))
	if err != nil {
		return "", nil, nil, err
	}
	var cluster *clientcmdapi.Cluster
	if len(cfg.Clusters) == 1 {
		for _, c := range cfg.Clusters {
			cluster = c
		}
	} else if ctx := cfg.Contexts[cfg.CurrentContext]; ctx != nil {
		cluster = cfg.Clusters[ctx.Cluster]
	}
	if cluster == nil {
		return "", nil, nil, fmt.Errorf("it has %d clusters and no current context naming one", len(cfg.Clusters))
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", nil, nil, fmt.Errorf("server %q is not an https:// URL", cluster.Server)
	}
	if len(cluster.CertificateAuthorityData) == 0 {
		return "", nil, nil, errors.New("no certificate-authority-data")
	}
	rest := cluster.CertificateAuthorityData
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return "", nil, nil, fmt.Errorf("certificate-authority-data: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return "", nil, nil, errors.New("certificate-authority-data holds no PEM certificate")
	}
	return cluster.Server, cluster.CertificateAuthorityData, certs, nil
}
