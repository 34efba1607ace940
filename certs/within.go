package certs

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RenewWithin renews every leaf certificate of dir that expires within
// the window, whatever the directory's layout: a state directory, or a
// control plane's /etc/kubernetes (pki/*.crt with their .key beside them,
// and the client certificates embedded in *.conf). Each is re-signed by
// the CA of dir that signed it, with its subject, names and usages and a
// new key, for validity. CAs are never renewed; a kubeconfig that points
// at a certificate file (the kubelet's) is not kubeforge's. Everything is
// read and checked first, then backed up to backups/<time>/; it returns
// the backup directory ("" when nothing was due) and what it renewed.
func RenewWithin(dir Dir, window, validity time.Duration, now time.Time) (string, []Result, error) {
	cas := map[string]*authorityPair{}
	for _, a := range Authorities() {
		if dir.exists(a.CertPath()) && dir.exists(a.KeyPath()) {
			p, err := dir.loadAuthority(a, true)
			if err != nil {
				return "", nil, err
			}
			cas[a.Name] = p
		}
	}
	type due struct {
		rw   certReadWriter
		ca   *authorityPair
		cert *x509.Certificate
		name string
	}
	var todo []due
	err := dir.eachFile(func(rel, p string) error {
		var rw certReadWriter
		switch {
		case strings.HasSuffix(rel, CertExt):
			key := strings.TrimSuffix(rel, CertExt) + KeyExt
			if !dir.exists(key) {
				return nil // a CA's certificate alone, or not ours
			}
			rw = pkiFile{cert: rel, key: key}
		case strings.HasSuffix(rel, ".conf"):
			kf, err := readKubeconfig(p)
			if err != nil || kf.cert == nil {
				return nil // no embedded client certificate (the kubelet's)
			}
			rw = kubeconfigCert{file: rel}
		default:
			return nil
		}
		cert, err := rw.Read(dir)
		if err != nil {
			return err
		}
		if cert.IsCA || cert.NotAfter.Sub(now) > window {
			return nil
		}
		for _, name := range []string{CAName, EtcdCAName, FrontProxyCAName} {
			if ca := cas[name]; ca != nil && ca.verify(cert) == nil {
				todo = append(todo, due{rw: rw, ca: ca, cert: cert, name: displayName(dir, rel)})
				return nil
			}
		}
		return &FileError{Path: dir.path(rel), Problem: "is signed by none of the CAs here (" + strings.Join(caNames(cas), ", ") + "): renewing it would keep an identity no CA here vouches for"}
	})
	if err != nil || len(todo) == 0 {
		return "", nil, err
	}
	targets := make([]renewable, len(todo))
	for i, t := range todo {
		targets[i] = renewable{name: t.name, display: t.name, rw: t.rw}
	}
	backup, err := backupFiles(dir, targets, now)
	if err != nil {
		return "", nil, err
	}
	var results []Result
	for _, t := range todo {
		alt := AltNames{DNSNames: slices.Clone(t.cert.DNSNames), IPs: slices.Clone(t.cert.IPAddresses)}
		certPEM, keyPEM, err := signLeaf(t.ca, leafRequest{
			Subject: t.cert.Subject, AltNames: alt, Usages: t.cert.ExtKeyUsage,
			Key: keyAlgorithmOf(t.cert), Validity: validity, Now: now,
		})
		if err != nil {
			return backup, results, err
		}
		if err := t.rw.Write(dir, certPEM, keyPEM); err != nil {
			return backup, results, err
		}
		results = append(results, Result{Name: t.name, Path: t.rw.Files()[0], Action: Renewed,
			Reason: fmt.Sprintf("was valid until %s", t.cert.NotAfter.UTC().Format(time.RFC3339))})
	}
	return backup, results, nil
}

func caNames(cas map[string]*authorityPair) []string {
	var out []string
	for n := range cas {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
