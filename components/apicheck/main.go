// Command kube-apiserver-check tells keepalived's track script whether the
// API server on this host is ready: it GETs https://ADDRESS:PORT/readyz,
// trusting only the cluster CA, and exits 0 only on HTTP 200. It replaces
// curl, so a host needs nothing from its OS packages for the check.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/kubeforge/kubeforge/internal/version"
)

// Exit codes: keepalived only tells 0 from the rest; 2 says the check
// itself is misconfigured.
const (
	exitReady    = 0
	exitNotReady = 1
	exitUsage    = 2
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// options are the check's flags.
type options struct {
	address string
	port    int
	caFile  string
	timeout time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kube-apiserver-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.address, "address", "127.0.0.1", "the API server's address")
	fs.IntVar(&o.port, "port", 6443, "the API server's secure port")
	fs.StringVar(&o.caFile, "cacert", "/etc/kubernetes/pki/ca.crt", "CA certificate (PEM) the API server's certificate must chain to")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Second, "give up after this long")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "kube-apiserver-check", version.Version)
		return exitReady
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kube-apiserver-check takes no arguments, got %q\n", fs.Args())
		return exitUsage
	}
	client, err := newClient(o)
	if err != nil {
		fmt.Fprintln(stderr, "kube-apiserver-check:", err)
		return exitUsage
	}
	if err := check(ctx, client, readyzURL(o), o.timeout); err != nil {
		fmt.Fprintln(stderr, "kube-apiserver-check:", err)
		return exitNotReady
	}
	return exitReady
}

func readyzURL(o options) string {
	u := url.URL{Scheme: "https", Host: net.JoinHostPort(o.address, strconv.Itoa(o.port)), Path: "/readyz"}
	return u.String()
}

// newClient trusts only the CA in o.caFile, uses no proxy and follows no
// redirect: a redirect is not a 200 from the API server.
func newClient(o options) (*http.Client, error) {
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", o.caFile)
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// check returns nil when GET url answers 200 within timeout.
func check(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("GET %s: no answer within %s", url, timeout)
	}
	if err != nil {
		return err // *url.Error names the method and URL
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}
