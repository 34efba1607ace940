package certs

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Expiry is one certificate's line in an expiry report.
type Expiry struct {
	Name     string        `json:"name"`
	Path     string        `json:"path"` // relative to the directory
	Kind     string        `json:"kind"` // "certificate" or "kubeconfig"
	Subject  string        `json:"subject,omitempty"`
	NotAfter time.Time     `json:"notAfter,omitempty"`
	Residual time.Duration `json:"residual,omitempty"`
	CA       string        `json:"signedBy,omitempty"` // the CA's name, "self-signed", or the issuer
	IsCA     bool          `json:"isCA"`
	Error    string        `json:"error,omitempty"` // the file could not be read
}

// Expired reports whether the certificate has expired at now.
func (e Expiry) Expired() bool { return e.Error == "" && e.Residual <= 0 }

// eachFile calls fn with every file under dir but the backups, by its
// slash-separated path relative to dir and its path on disk.
func (dir Dir) eachFile(fn func(rel, path string) error) error {
	root := string(dir)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == BackupsDir {
				return filepath.SkipDir
			}
			return nil
		}
		return fn(rel, p)
	})
}

// Check reads every certificate file (*.crt) and every kubeconfig (*.conf)
// under dir, except backups, and reports when each expires. Unreadable
// files are reported with their error, not skipped.
func Check(dir Dir, now time.Time) ([]Expiry, error) {
	var cas []*authorityPair
	for _, a := range Authorities() {
		if p, err := dir.loadAuthority(a, false); err == nil {
			cas = append(cas, p)
		}
	}
	var out []Expiry
	err := dir.eachFile(func(rel, p string) error {
		var e Expiry
		var cert *x509.Certificate
		var err error
		switch {
		case strings.HasSuffix(rel, CertExt):
			e.Kind = "certificate"
			cert, err = dir.readCert(rel)
		case strings.HasSuffix(rel, ".conf"):
			e.Kind = "kubeconfig"
			var kf *kubeconfigFile
			if kf, err = readKubeconfig(p); err == nil {
				cert = kf.cert
			}
		default:
			return nil
		}
		e.Path, e.Name = rel, displayName(dir, rel)
		if err != nil {
			var fe *FileError
			if errors.As(err, &fe) {
				e.Error = fe.Problem
			} else {
				e.Error = err.Error()
			}
			out = append(out, e)
			return nil
		}
		e.Subject = cert.Subject.String()
		e.NotAfter = cert.NotAfter.UTC()
		e.Residual = cert.NotAfter.Sub(now).Truncate(time.Second)
		e.IsCA = cert.IsCA
		e.CA = signedBy(cert, cas)
		out = append(out, e)
		return nil
	})
	if err != nil {
		return out, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].IsCA != out[j].IsCA {
			return !out[i].IsCA // leaves first, the CAs last, like kubeadm
		}
		if out[i].Kind != out[j].Kind {
			return out[i].Kind == "kubeconfig"
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

func signedBy(cert *x509.Certificate, cas []*authorityPair) string {
	for _, ca := range cas {
		if cert.Equal(ca.cert) {
			return "self-signed"
		}
		if ca.verify(cert) == nil {
			return ca.Name
		}
	}
	if string(cert.RawIssuer) == string(cert.RawSubject) {
		return "self-signed"
	}
	return "unknown issuer " + cert.Issuer.String()
}
