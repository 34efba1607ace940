package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// File modes of the PKI directory.
const (
	dirMode  = 0o700
	keyMode  = 0o600
	certMode = 0o644
)

// FileError is a PKI file that is missing, unreadable, or not what it
// should be.
type FileError struct {
	Path    string
	Problem string
	Err     error
}

func (e *FileError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Path, e.Problem, e.Err)
	}
	return e.Path + ": " + e.Problem
}

func (e *FileError) Unwrap() error { return e.Err }

// Dir is a PKI directory (see names.go for its layout).
type Dir string

func (d Dir) path(rel string) string { return filepath.Join(string(d), filepath.FromSlash(rel)) }

func (d Dir) exists(rel string) bool { return atomicfile.Exists(d.path(rel)) }

// readCert reads one PEM certificate.
func (d Dir) readCert(rel string) (*x509.Certificate, error) {
	path := d.path(rel)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &FileError{Path: path, Problem: "cannot read the certificate", Err: err}
	}
	return parseCertPEM(path, data)
}

func parseCertPEM(path string, data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, &FileError{Path: path, Problem: "not a PEM certificate (empty, truncated or garbled)"}
	}
	if block.Type != "CERTIFICATE" {
		return nil, &FileError{Path: path, Problem: fmt.Sprintf("holds a %q PEM block, not a CERTIFICATE", block.Type)}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, &FileError{Path: path, Problem: "cannot parse the certificate (truncated or garbled)", Err: err}
	}
	return cert, nil
}

// readKey reads one PEM private key (PKCS#1, SEC 1 or PKCS#8).
func (d Dir) readKey(rel string) (crypto.Signer, error) {
	path := d.path(rel)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &FileError{Path: path, Problem: "cannot read the private key", Err: err}
	}
	return parseKeyPEM(path, data)
}

func parseKeyPEM(path string, data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, &FileError{Path: path, Problem: "not a PEM private key (empty, truncated or garbled)"}
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, &FileError{Path: path, Problem: fmt.Sprintf("holds a %q PEM block, not a private key", block.Type)}
	}
	if err != nil {
		return nil, &FileError{Path: path, Problem: "cannot parse the private key (truncated or garbled)", Err: err}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, &FileError{Path: path, Problem: fmt.Sprintf("unsupported key type %T", key)}
	}
	return signer, nil
}

// keyMatches reports whether key is the private half of cert.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// writePair writes a certificate and its key, key first, each atomically.
func (d Dir) writePair(certRel, keyRel string, certPEM, keyPEM []byte) error {
	if err := atomicfile.Write(d.path(keyRel), keyPEM, keyMode, dirMode); err != nil {
		return fmt.Errorf("write %s: %w", d.path(keyRel), err)
	}
	if err := atomicfile.Write(d.path(certRel), certPEM, certMode, dirMode); err != nil {
		return fmt.Errorf("write %s: %w", d.path(certRel), err)
	}
	return nil
}

// authorityPair is a loaded CA.
type authorityPair struct {
	*Authority
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// loadAuthority reads a CA and checks that it is one and that its key
// matches. The key may be absent only when needKey is false.
func (d Dir) loadAuthority(a *Authority, needKey bool) (*authorityPair, error) {
	certPath := d.path(a.CertPath())
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, &FileError{Path: certPath, Problem: "cannot read the " + a.Name + " certificate", Err: err}
	}
	cert, err := parseCertPEM(certPath, data)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, &FileError{Path: certPath, Problem: "is not a CA certificate (basicConstraints CA:FALSE)"}
	}
	p := &authorityPair{Authority: a, cert: cert, certPEM: data}
	if !needKey && !d.exists(a.KeyPath()) {
		return p, nil
	}
	key, err := d.readKey(a.KeyPath())
	if err != nil {
		return nil, err
	}
	if !keyMatches(cert, key) {
		return nil, &FileError{Path: d.path(a.KeyPath()), Problem: "does not match " + certPath}
	}
	p.key = key
	return p, nil
}

// verify checks that cert was issued by this CA (the signature, not the
// dates: expired certificates are what renewal is for).
func (p *authorityPair) verify(cert *x509.Certificate) error {
	if !bytes.Equal(cert.RawIssuer, p.cert.RawSubject) {
		return fmt.Errorf("issued by %q, not signed by %s (%q)", cert.Issuer.String(), p.Name, p.cert.Subject.String())
	}
	if err := cert.CheckSignatureFrom(p.cert); err != nil {
		return fmt.Errorf("not signed by %s (same issuer name, another key: %v)", p.Name, err)
	}
	return nil
}

// read returns a file of the directory.
func (d Dir) read(rel string) ([]byte, error) {
	data, err := os.ReadFile(d.path(rel))
	if err != nil {
		return nil, &FileError{Path: d.path(rel), Problem: "cannot be read", Err: err}
	}
	return data, nil
}

// write writes one file atomically.
func (d Dir) write(rel string, data []byte, mode os.FileMode) error {
	if err := atomicfile.Write(d.path(rel), data, mode, dirMode); err != nil {
		return fmt.Errorf("write %s: %w", d.path(rel), err)
	}
	return nil
}
