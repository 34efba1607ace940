package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
)

// Ports the control plane's health endpoints are served on, on loopback.
const (
	ControllerManagerPort = 10257
	SchedulerPort         = 10259
)

// APIReady reports whether every /readyz check of the API server on h
// passes. It asks anonymously through h's connection (the API server
// allows /readyz to anyone once its RBAC roles exist, which /readyz waits
// for too); when anonymous requests are off, as the client's identity.
// Nothing listening yet is a "no", not an error.
func (c *Client) APIReady(ctx context.Context, h *host.Host) (bool, error) {
	ok, _, err := c.readyz(ctx, h, "/readyz")
	return ok, err
}

func (c *Client) ready(ctx context.Context, h *host.Host) (bool, error) { return c.APIReady(ctx, h) }

// readyz GETs path from h's API server; detail is the body when it is not
// ok.
func (c *Client) readyz(ctx context.Context, h *host.Host, path string) (ok bool, detail string, err error) {
	code, body, err := get(ctx, h, c.port(), path)
	switch {
	case errors.Is(err, host.ErrNotListening):
		return false, "nothing listens on port " + strconv.Itoa(c.port()), nil
	case err != nil:
		return false, "", wrap("GET "+path+" on "+h.Name(), err)
	case code == http.StatusOK:
		return strings.TrimSpace(body) == "ok", body, nil
	case code == http.StatusUnauthorized && c.o.Kubeconfig != "":
		api, err := c.apiThrough(h)
		if err != nil {
			return false, "", err
		}
		raw, err := api.Discovery().RESTClient().Get().AbsPath(path).DoRaw(ctx)
		if err != nil {
			return false, string(raw), nil // not ready: the body lists the failed checks
		}
		return strings.TrimSpace(string(raw)) == "ok", string(raw), nil
	default: // 403 before the RBAC roles exist, 500 while checks fail
		return false, body, nil
	}
}

// WaitAPIServer waits until every /readyz check of the API server on h
// passes; the error names the checks that did not.
func (c *Client) WaitAPIServer(ctx context.Context, h *host.Host, timeout time.Duration) error {
	err := wait.For(ctx, timeout, func() (bool, error) { return c.APIReady(ctx, h) })
	if err == nil {
		return nil
	}
	_, detail, _ := c.readyz(context.WithoutCancel(ctx), h, "/readyz?verbose")
	var failed []string
	for _, line := range strings.Split(detail, "\n") {
		if strings.HasPrefix(line, "[-]") {
			failed = append(failed, strings.TrimSpace(line))
		}
	}
	if len(failed) > 5 {
		failed = failed[:5]
	}
	return fmt.Errorf("kube-apiserver on %s is not ready: %w: %s (see journalctl -u kube-apiserver)", h.Name(), err, strings.Join(failed, "; "))
}

// ControllersHealthy reports whether the controller-manager and the
// scheduler on h answer /healthz (allowed to anyone; their serving
// certificates are self-signed).
func (c *Client) ControllersHealthy(ctx context.Context, h *host.Host) (unhealthy []string, err error) {
	for _, s := range []struct {
		name string
		port int
	}{{"kube-controller-manager", ControllerManagerPort}, {"kube-scheduler", SchedulerPort}} {
		code, body, err := get(ctx, h, s.port, "/healthz")
		if errors.Is(err, host.ErrNotListening) || err == nil && (code != http.StatusOK || strings.TrimSpace(body) != "ok") {
			unhealthy = append(unhealthy, s.name)
			continue
		}
		if err != nil {
			return nil, wrap("GET /healthz of "+s.name+" on "+h.Name(), err)
		}
	}
	return unhealthy, nil
}

// WaitControllers waits for the controller-manager and the scheduler on h
// to be healthy.
func (c *Client) WaitControllers(ctx context.Context, h *host.Host, timeout time.Duration) error {
	var unhealthy []string
	err := wait.For(ctx, timeout, func() (bool, error) {
		var err error
		unhealthy, err = c.ControllersHealthy(ctx, h)
		return err == nil && len(unhealthy) == 0, err
	})
	if err != nil {
		return fmt.Errorf("%s on %s not healthy: %w (see journalctl -u %s)", strings.Join(unhealthy, " and "), h.Name(), err, strings.Join(unhealthy, " -u "))
	}
	return nil
}

// get GETs path from 127.0.0.1:port on h over TLS, anonymously, through
// h's connection. Only the status and a short body are read: nothing
// secret is sent, over the SSH session's own authenticated channel to the
// host's loopback.
func get(ctx context.Context, h *host.Host, port int, path string) (code int, body string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := h.Dial(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // see above
	if _, err := fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	return resp.StatusCode, string(b), nil
}

// EndpointReady asks /readyz at the cluster's endpoint (the VIP, when
// there is one) from another place: through from's connection, or from
// this machine when from is nil. The server must present a certificate of
// the cluster CA. nil means it answered ok.
func (c *Client) EndpointReady(ctx context.Context, from *host.Host) error {
	caPEM, err := os.ReadFile(c.o.CACert)
	if err != nil {
		return &Error{Op: "the cluster CA", Kind: ErrForbidden, Err: err}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	endpoint := c.o.Cluster.Spec.ControlPlane.Endpoint
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		if from != nil {
			return from.Dial(ctx, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+endpoint+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return wrap("GET https://"+endpoint+"/readyz", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return &Error{Op: "GET https://" + endpoint + "/readyz", Kind: ErrUnavailable,
			Err: fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))}
	}
	return nil
}

// encryptionConfigInfo is the API server's metric of the encryption
// configuration it uses: its label hash is "sha256:" and the file's
// sha256, set at start and at each automatic reload.
const encryptionConfigInfo = "apiserver_encryption_config_controller_last_config_info{"

// EncryptionConfigHash is the hash of the encryption configuration h's
// API server encrypts with, from its metrics; "" when it does not say
// (an API server without automatic reload, or a metric renamed).
func (c *Client) EncryptionConfigHash(ctx context.Context, h *host.Host) (string, error) {
	api, err := c.apiThrough(h)
	if err != nil {
		return "", err
	}
	body, err := api.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return "", wrap("read the metrics of the API server on "+h.Name(), err)
	}
	return configHash(string(body)), nil
}

// hashLabel is the label "hash" (not apiserver_id_hash) of a metric line.
var hashLabel = regexp.MustCompile(`[{,]hash="([^"]*)"`)

// configHash reads the encryption configuration's hash from metrics.
func configHash(metrics string) string {
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, encryptionConfigInfo) {
			continue
		}
		if m := hashLabel.FindStringSubmatch(line); m != nil {
			return m[1]
		}
	}
	return ""
}
