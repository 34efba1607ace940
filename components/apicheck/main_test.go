package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// apiServer is a TLS server on 127.0.0.1 answering /readyz with handler,
// and a CA file that trusts it.
func apiServer(t *testing.T, handler http.HandlerFunc) (host, port, caFile string) {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.crt")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return host, port, caFile
}

func readyz(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte("[-]etcd failed\n"))
	}
}

func TestRun(t *testing.T) {
	// Every httptest server has the same certificate: the other CA is made here.
	otherCA := selfSigned(t)
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		args    func(host, port, ca string) []string
		code    int
		stderr  string
	}{
		{"ready", readyz(http.StatusOK), flags, exitReady, ""},
		{"not ready", readyz(http.StatusInternalServerError), flags, exitNotReady, "500"},
		{"unauthorized", readyz(http.StatusUnauthorized), flags, exitNotReady, "401"},
		{"redirect is not ready", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/livez", http.StatusFound)
		}, flags, exitNotReady, "302"},
		{"too slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, func(h, p, ca string) []string { return append(flags(h, p, ca), "-timeout", "200ms") }, exitNotReady, "no answer within 200ms"},
		{"certificate from another CA", readyz(http.StatusOK), func(h, p, _ string) []string { return flags(h, p, otherCA) }, exitNotReady, "certificate"},
		{"nothing listening", readyz(http.StatusOK), func(h, _, ca string) []string { return flags(h, "1", ca) }, exitNotReady, "refused"},
		{"missing CA file", readyz(http.StatusOK), func(h, p, _ string) []string { return flags(h, p, "/nonexistent/ca.crt") }, exitUsage, "CA file"},
		{"CA file without PEM", readyz(http.StatusOK), func(h, p, _ string) []string { return flags(h, p, garbage) }, exitUsage, "no PEM"},
		{"unknown flag", readyz(http.StatusOK), func(string, string, string) []string { return []string{"-bogus"} }, exitUsage, "bogus"},
		{"argument", readyz(http.StatusOK), func(h, p, ca string) []string { return append(flags(h, p, ca), "extra") }, exitUsage, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port, ca := apiServer(t, tc.handler)
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := run(context.Background(), tc.args(host, port, ca), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want it to mention %q", stderr.String(), tc.stderr)
			}
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("took %s", elapsed)
			}
		})
	}
}

// selfSigned writes a CA certificate that signed nothing the server has.
func selfSigned(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func flags(host, port, ca string) []string {
	return []string{"-address", host, "-port", port, "-cacert", ca}
}

func TestDefaults(t *testing.T) {
	if got := readyzURL(options{address: "127.0.0.1", port: 6443}); got != "https://127.0.0.1:6443/readyz" {
		t.Errorf("default URL %s", got)
	}
	if got := readyzURL(options{address: "::1", port: 6443}); got != "https://[::1]:6443/readyz" {
		t.Errorf("IPv6 URL %s", got)
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"-version"}, &stdout, &bytes.Buffer{}); code != 0 || !strings.HasPrefix(stdout.String(), "kube-apiserver-check v") {
		t.Errorf("-version: exit %d, %q", code, stdout.String())
	}
}
