package certs

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
	"github.com/kubeforge/kubeforge/internal/config"
)

// certReadWriter is where a renewable certificate lives: a PKI file pair or
// a kubeconfig's embedded client certificate (kubeadm's renewal model).
type certReadWriter interface {
	// Files lists the files the certificate is stored in, for the backup.
	Files() []string
	Read(dir Dir) (*x509.Certificate, error)
	Write(dir Dir, certPEM, keyPEM []byte) error
}

// pkiFile is a certificate and key pair under pki/.
type pkiFile struct{ cert, key string }

func (f pkiFile) Files() []string                         { return []string{f.cert, f.key} }
func (f pkiFile) Read(dir Dir) (*x509.Certificate, error) { return dir.readCert(f.cert) }
func (f pkiFile) Write(dir Dir, certPEM, keyPEM []byte) error {
	return dir.writePair(f.cert, f.key, certPEM, keyPEM)
}

// kubeconfigCert is the client certificate embedded in a kubeconfig.
type kubeconfigCert struct{ file string }

func (k kubeconfigCert) Files() []string { return []string{k.file} }
func (k kubeconfigCert) Read(dir Dir) (*x509.Certificate, error) {
	kf, err := readKubeconfig(dir.path(k.file))
	if err != nil {
		return nil, err
	}
	return kf.cert, nil
}
func (k kubeconfigCert) Write(dir Dir, certPEM, keyPEM []byte) error {
	kf, err := readKubeconfig(dir.path(k.file))
	if err != nil {
		return err
	}
	kf.authInfo.ClientCertificateData = certPEM
	kf.authInfo.ClientKeyData = keyPEM
	return kf.write()
}

// renewable is one entry of the renewal table.
type renewable struct {
	name    string // kubeadm's name, what `certs renew NAME` takes
	display string
	ca      string
	rw      certReadWriter
	want    AltNames // names the configuration adds, if a cluster file was given
}

// CARenewalError refuses to renew a certificate authority.
type CARenewalError struct{ Name string }

func (e *CARenewalError) Error() string {
	return fmt.Sprintf("%s is a certificate authority: renewing it would replace the trust root every component and "+
		"node relies on, so 'certs renew' renews only the certificates signed by the CAs (CA rotation is a separate "+
		"procedure). Leaf names: all, %s", e.Name, strings.Join(leafNames(), ", "))
}

// RenewOptions select what Renew does.
type RenewOptions struct {
	Options
	// Spec, when set (from a cluster file), adds the names and addresses
	// the configuration calls for and sets the validity and key type.
	Spec *Spec
}

// Renew re-issues the named leaf certificates ("all" for every one) found
// in dir, signed by the existing CAs, each with the subject, names and
// usages read from the current certificate plus any the cluster file adds,
// and a new key. Every target is read and checked before anything is
// written; then the files are copied to backups/<time>/. It returns the
// backup directory.
func Renew(dir Dir, names []string, opts RenewOptions) (string, []Result, error) {
	now := opts.now()
	if len(names) == 0 {
		return "", nil, fmt.Errorf("name the certificates to renew: all, %s", strings.Join(leafNames(), ", "))
	}
	for _, n := range names {
		switch {
		case isCAName(n):
			return "", nil, &CARenewalError{Name: n}
		case n != "all" && !slices.Contains(leafNames(), n):
			return "", nil, fmt.Errorf("unknown certificate %q: use all, %s", n, strings.Join(leafNames(), ", "))
		}
	}
	targets := renewalTable(dir, opts.Spec)
	targets = slices.DeleteFunc(targets, func(r renewable) bool {
		return !slices.Contains(names, "all") && !slices.Contains(names, r.name)
	})
	targets = slices.DeleteFunc(targets, func(r renewable) bool { return !dir.exists(r.rw.Files()[0]) })
	if len(targets) == 0 {
		return "", nil, fmt.Errorf("%s holds none of %v: run 'kubeforge certs generate' first", dir, names)
	}

	// Read and check everything first.
	cas := map[string]*authorityPair{}
	current := make([]*x509.Certificate, len(targets))
	for i, t := range targets {
		ca, ok := cas[t.ca]
		if !ok {
			var err error
			if ca, err = dir.loadAuthority(authorityFor(t.ca), true); err != nil {
				return "", nil, err
			}
			cas[t.ca] = ca
		}
		cert, err := t.rw.Read(dir)
		if err != nil {
			return "", nil, err
		}
		if cert.IsCA {
			return "", nil, &FileError{Path: dir.path(t.rw.Files()[0]), Problem: fmt.Sprintf(
				"holds a CA certificate (%s) where the %s certificate is expected", cert.Subject, t.display)}
		}
		if err := ca.verify(cert); err != nil {
			return "", nil, &FileError{Path: dir.path(t.rw.Files()[0]), Problem: err.Error() +
				": renewing would keep an identity its CA never vouched for; restore the right file, or run 'certs generate' to issue a new one"}
		}
		current[i] = cert
	}

	backup, err := backupFiles(dir, targets, now)
	if err != nil {
		return "", nil, err
	}
	var results []Result
	for i, t := range targets {
		cert := current[i]
		alt := AltNames{DNSNames: slices.Clone(cert.DNSNames), IPs: slices.Clone(cert.IPAddresses)}
		alt.add(t.want.strings()...)
		key, validity := keyAlgorithmOf(cert), config.DefaultValidity
		if opts.Spec != nil {
			key, validity = opts.Spec.Key, opts.Spec.Validity
		}
		certPEM, keyPEM, err := signLeaf(cas[t.ca], leafRequest{
			Subject:  cert.Subject,
			AltNames: alt,
			Usages:   cert.ExtKeyUsage,
			Key:      key,
			Validity: validity,
			Now:      now,
		})
		if err != nil {
			return backup, results, err
		}
		if err := t.rw.Write(dir, certPEM, keyPEM); err != nil {
			return backup, results, err
		}
		results = append(results, Result{Name: t.display, Path: t.rw.Files()[0], Action: Renewed,
			Reason: "was valid until " + cert.NotAfter.UTC().Format(time.RFC3339)})
	}
	return backup, results, nil
}

// renewalTable lists every renewable certificate the directory can hold.
func renewalTable(dir Dir, spec *Spec) []renewable {
	found := discoverSpec(dir)
	configured := map[string]AltNames{}
	if spec != nil {
		for _, c := range Certs(*spec) {
			configured[c.CertPath()] = c.AltNames
		}
	}
	var out []renewable
	for _, c := range Certs(found) {
		// Certs(found) has no SANs for the shared certificates; the
		// configuration's come from the cluster file when given.
		out = append(out, renewable{name: c.Name, display: c.DisplayName(), ca: c.CA.Name,
			rw: pkiFile{cert: c.CertPath(), key: c.KeyPath()}, want: configured[c.CertPath()]})
	}
	for _, k := range Kubeconfigs(found) {
		out = append(out, renewable{name: k.Name, display: k.DisplayName(), ca: CAName, rw: kubeconfigCert{file: k.Path()}})
	}
	return out
}

// keyAlgorithmOf keeps the key type of the certificate being renewed.
func keyAlgorithmOf(cert *x509.Certificate) KeyAlgorithm {
	if k, ok := cert.PublicKey.(*rsa.PublicKey); ok {
		if k.N.BitLen() > 2048 {
			return RSA4096
		}
		return RSA2048
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
		return ECDSAP256
	}
	return ECDSAP256
}

// backupFiles copies the targets' files to backups/<time>/, same layout.
func backupFiles(dir Dir, targets []renewable, now time.Time) (string, error) {
	rel := path.Join(BackupsDir, now.UTC().Format("20060102T150405Z"))
	for i := 0; dir.exists(rel); i++ {
		rel = path.Join(BackupsDir, fmt.Sprintf("%s-%d", now.UTC().Format("20060102T150405Z"), i+1))
	}
	for _, t := range targets {
		for _, f := range t.rw.Files() {
			if !dir.exists(f) {
				continue
			}
			if err := atomicfile.Copy(dir.path(f), dir.path(path.Join(rel, f)), dirMode); err != nil {
				return "", fmt.Errorf("back up %s: %w", dir.path(f), err)
			}
		}
	}
	return dir.path(rel), nil
}
