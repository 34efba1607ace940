package certs

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// Action is what Generate or Renew did to a file.
type Action string

const (
	Created  Action = "created"
	Kept     Action = "kept"
	Reissued Action = "re-issued"
	Updated  Action = "updated"
	Renewed  Action = "renewed"
)

// Result is one line of a Generate or Renew report.
type Result struct {
	Name   string // display name: "etcd-server (cp1)"
	Path   string // relative to the directory
	Action Action
	Reason string // why it was re-issued or updated
}

// Options tune Generate and Renew.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// DryRun makes Generate report what it would do and write nothing.
	DryRun bool
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Generate makes dir hold the PKI the spec calls for. It is idempotent:
// valid files are kept; a leaf that no longer matches the spec (names,
// subject, usages), no longer chains to its CA, or has expired is
// re-issued; an existing CA is never replaced. Files that are unreadable
// or inconsistent stop it with an error naming them, before anything is
// written.
func Generate(s Spec, dir Dir, opts Options) ([]Result, error) {
	now := opts.now()
	var results []Result

	cas := map[string]*authorityPair{}
	for _, a := range Authorities() {
		p, res, err := ensureAuthority(dir, a, s, opts.DryRun)
		if err != nil {
			return results, err
		}
		cas[a.Name] = p
		results = append(results, res)
	}
	if opts.DryRun && !dir.exists(SAPrivateKeyPath()) {
		results = append(results, Result{Name: "sa.key", Path: SAPrivateKeyPath(), Action: Created})
	} else if !opts.DryRun {
		res, err := ensureServiceAccountKey(dir, s.Key)
		if err != nil {
			return results, err
		}
		results = append(results, res...)
	}

	// Plan every leaf first, so a broken file stops the run before any
	// certificate is written.
	type plan struct {
		cert   *Cert
		reason string
		action Action
	}
	var plans []plan
	for _, c := range Certs(s) {
		if cas[c.CA.Name] == nil { // dry run, CA to be created
			plans = append(plans, plan{c, "its CA is new", Created})
			continue
		}
		action, reason, err := checkLeaf(dir, cas[c.CA.Name], c, now)
		if err != nil {
			return results, err
		}
		plans = append(plans, plan{c, reason, action})
	}
	type kplan struct {
		kc       *Kubeconfig
		action   Action
		reason   string
		existing *kubeconfigFile
	}
	var kplans []kplan
	var err error
	ca := cas[CAName]
	for _, k := range Kubeconfigs(s) {
		p := kplan{kc: k}
		if ca == nil {
			p.action, p.reason = Created, "its CA is new"
		} else if p.action, p.reason, p.existing, err = checkKubeconfig(dir, ca, k, s.ClusterName, now); err != nil {
			return results, err
		}
		kplans = append(kplans, p)
	}
	if opts.DryRun {
		for _, p := range plans {
			results = append(results, Result{Name: p.cert.DisplayName(), Path: p.cert.CertPath(), Action: p.action, Reason: p.reason})
		}
		for _, p := range kplans {
			results = append(results, Result{Name: p.kc.DisplayName(), Path: p.kc.Path(), Action: p.action, Reason: p.reason})
		}
		return results, nil
	}

	for _, p := range plans {
		if p.action != Kept {
			if err := issueLeaf(dir, cas[p.cert.CA.Name], p.cert, s, now); err != nil {
				return results, err
			}
		}
		results = append(results, Result{Name: p.cert.DisplayName(), Path: p.cert.CertPath(), Action: p.action, Reason: p.reason})
	}
	for _, p := range kplans {
		switch p.action {
		case Created, Reissued:
			if err := issueKubeconfig(dir, ca, p.kc, s, now); err != nil {
				return results, err
			}
		case Updated:
			p.existing.cluster.Server = p.kc.Server
			p.existing.cluster.CertificateAuthorityData = ca.certPEM
			if err := p.existing.write(); err != nil {
				return results, err
			}
		}
		results = append(results, Result{Name: p.kc.DisplayName(), Path: p.kc.Path(), Action: p.action, Reason: p.reason})
	}
	return results, nil
}

// ensureAuthority loads a CA, or creates it when neither file exists.
func ensureAuthority(dir Dir, a *Authority, s Spec, dryRun bool) (*authorityPair, Result, error) {
	res := Result{Name: a.Name, Path: a.CertPath(), Action: Kept}
	certThere, keyThere := dir.exists(a.CertPath()), dir.exists(a.KeyPath())
	switch {
	case certThere && keyThere:
		p, err := dir.loadAuthority(a, true)
		return p, res, err
	case certThere || keyThere:
		present, missing := a.CertPath(), a.KeyPath()
		if keyThere {
			present, missing = missing, present
		}
		return nil, res, &FileError{Path: dir.path(missing), Problem: fmt.Sprintf(
			"is missing but %s exists: restore it; kubeforge never replaces a CA (remove both files only to start a new PKI)", present)}
	}
	if dryRun {
		res.Action = Created
		return nil, res, nil
	}
	certPEM, keyPEM, err := newCA(a.CommonName, s.Key, s.CAValidity)
	if err != nil {
		return nil, res, err
	}
	if err := dir.writePair(a.CertPath(), a.KeyPath(), certPEM, keyPEM); err != nil {
		return nil, res, err
	}
	p, err := dir.loadAuthority(a, true)
	res.Action = Created
	return p, res, err
}

// ensureServiceAccountKey keeps or creates sa.key and (re)derives sa.pub.
func ensureServiceAccountKey(dir Dir, alg KeyAlgorithm) ([]Result, error) {
	keyRes := Result{Name: "sa.key", Path: SAPrivateKeyPath(), Action: Kept}
	pubRes := Result{Name: "sa.pub", Path: SAPublicKeyPath(), Action: Kept}
	if !dir.exists(SAPrivateKeyPath()) {
		keyPEM, pubPEM, err := newKeyPair(alg)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(dir.path(SAPrivateKeyPath()), keyPEM, keyMode, dirMode); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(dir.path(SAPublicKeyPath()), pubPEM, certMode, dirMode); err != nil {
			return nil, err
		}
		keyRes.Action, pubRes.Action = Created, Created
		return []Result{keyRes, pubRes}, nil
	}
	key, err := dir.readKey(SAPrivateKeyPath())
	if err != nil {
		return nil, err
	}
	pubPEM, err := publicKeyPEM(key.Public())
	if err != nil {
		return nil, err
	}
	if !atomicfile.Same(dir.path(SAPublicKeyPath()), pubPEM, certMode) {
		if err := atomicfile.Write(dir.path(SAPublicKeyPath()), pubPEM, certMode, dirMode); err != nil {
			return nil, err
		}
		pubRes.Action, pubRes.Reason = Updated, "derived again from sa.key"
	}
	return []Result{keyRes, pubRes}, nil
}

// checkLeaf decides what to do with a leaf: keep, create or re-issue. It
// returns an error for files that are damaged or of the wrong kind.
func checkLeaf(dir Dir, ca *authorityPair, c *Cert, now time.Time) (Action, string, error) {
	certThere, keyThere := dir.exists(c.CertPath()), dir.exists(c.KeyPath())
	switch {
	case !certThere && !keyThere:
		return Created, "", nil
	case !keyThere:
		return Reissued, "its key is missing", nil
	case !certThere:
		return Reissued, "its certificate is missing", nil
	}
	cert, err := dir.readCert(c.CertPath())
	if err != nil {
		return "", "", err
	}
	if cert.IsCA {
		return "", "", &FileError{Path: dir.path(c.CertPath()), Problem: fmt.Sprintf(
			"holds a CA certificate (%s) where the %s certificate is expected", cert.Subject, c.DisplayName())}
	}
	key, err := dir.readKey(c.KeyPath())
	if err != nil {
		return "", "", err
	}
	if !keyMatches(cert, key) {
		return "", "", &FileError{Path: dir.path(c.KeyPath()), Problem: fmt.Sprintf(
			"does not match %s: restore the pair, or delete both files to have them issued again", dir.path(c.CertPath()))}
	}
	if reason := leafDrift(ca, cert, c.CommonName, c.Groups, c.Usages, c.AltNames, now); reason != "" {
		return Reissued, reason, nil
	}
	return Kept, "", nil
}

// leafDrift explains why an existing certificate no longer fits, or
// returns "".
func leafDrift(ca *authorityPair, cert *x509.Certificate, cn string, groups []string, usages []x509.ExtKeyUsage, alt AltNames, now time.Time) string {
	if err := ca.verify(cert); err != nil {
		return err.Error()
	}
	if !now.Before(cert.NotAfter) {
		return "expired on " + cert.NotAfter.UTC().Format(time.RFC3339)
	}
	if cert.Subject.CommonName != cn || !sameSet(cert.Subject.Organization, groups) {
		return fmt.Sprintf("subject is %q, want CN=%s O=%v", cert.Subject.String(), cn, groups)
	}
	if !sameUsages(cert.ExtKeyUsage, usages) {
		return "extended key usages changed"
	}
	have := AltNames{DNSNames: cert.DNSNames, IPs: cert.IPAddresses}
	if !have.covers(alt) {
		var missing AltNames
		for _, n := range alt.DNSNames {
			if !containsString(have.DNSNames, n) {
				missing.add(n)
			}
		}
		for _, ip := range alt.IPs {
			if !containsIP(have.IPs, ip) {
				missing.add(ip.String())
			}
		}
		return "SANs lack " + strings.Join(missing.strings(), ", ")
	}
	return ""
}

// issueLeaf issues a new key and certificate for c.
func issueLeaf(dir Dir, ca *authorityPair, c *Cert, s Spec, now time.Time) error {
	certPEM, keyPEM, err := signLeaf(ca, leafRequest{
		Subject:  pkix.Name{CommonName: c.CommonName, Organization: c.Groups},
		AltNames: c.AltNames,
		Usages:   c.Usages,
		Key:      s.Key,
		Validity: s.Validity,
		Now:      now,
	})
	if err != nil {
		return err
	}
	return dir.writePair(c.CertPath(), c.KeyPath(), certPEM, keyPEM)
}

// checkKubeconfig decides what to do with a kubeconfig.
func checkKubeconfig(dir Dir, ca *authorityPair, k *Kubeconfig, clusterName string, now time.Time) (Action, string, *kubeconfigFile, error) {
	if !dir.exists(k.Path()) {
		return Created, "", nil, nil
	}
	kf, err := readKubeconfig(dir.path(k.Path()))
	if err != nil {
		return "", "", nil, err
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if reason := leafDrift(ca, kf.cert, k.CommonName, k.Groups, client, AltNames{}, now); reason != "" {
		return Reissued, reason, kf, nil
	}
	if _, ok := kf.config.Clusters[clusterName]; !ok {
		return Reissued, fmt.Sprintf("cluster name is not %q", clusterName), kf, nil
	}
	if kf.cluster.Server != k.Server {
		return Updated, fmt.Sprintf("server %s -> %s", kf.cluster.Server, k.Server), kf, nil
	}
	if string(kf.cluster.CertificateAuthorityData) != string(ca.certPEM) {
		return Updated, "CA data differs from " + CABase + CertExt, kf, nil
	}
	return Kept, "", kf, nil
}

// issueKubeconfig writes a kubeconfig with a new client certificate.
func issueKubeconfig(dir Dir, ca *authorityPair, k *Kubeconfig, s Spec, now time.Time) error {
	certPEM, keyPEM, err := signLeaf(ca, leafRequest{
		Subject:  pkix.Name{CommonName: k.CommonName, Organization: k.Groups},
		Usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Key:      s.Key,
		Validity: s.Validity,
		Now:      now,
	})
	if err != nil {
		return err
	}
	data, err := buildKubeconfig(s.ClusterName, k.Server, k.CommonName, ca.certPEM, certPEM, keyPEM)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(dir.path(k.Path()), data, keyMode, dirMode); err != nil {
		return fmt.Errorf("write %s: %w", dir.path(k.Path()), err)
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

func sameUsages(a, b []x509.ExtKeyUsage) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// NodeClientPEM issues the first client certificate of a node's kubelet
// (system:node:<node> in system:nodes) with the cluster CA of dir, and
// returns the certificate and its key in one PEM block sequence, the
// layout of the kubelet's own kubelet-client-*.pem files. kubeadm gives
// the nodes it sets up such a certificate too: the kubelet needs no
// bootstrap token nor a controller-manager to approve it, so it can
// register as soon as the API server answers. The kubelet rotates it
// itself from then on. The key is ECDSA P-256, what the kubelet makes.
func NodeClientPEM(dir Dir, node string, validity time.Duration, now time.Time) ([]byte, error) {
	ca, err := dir.loadAuthority(ClusterCA(), true)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := signLeaf(ca, leafRequest{
		Subject:  pkix.Name{CommonName: NodeCNPrefix + node, Organization: []string{NodesGroup}},
		Usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Key:      ECDSAP256,
		Validity: validity,
		Now:      now,
	})
	if err != nil {
		return nil, err
	}
	return append(certPEM, keyPEM...), nil
}

// HasCAKey reports whether dir holds the cluster CA's private key, which
// NodeClientPEM needs.
func HasCAKey(dir Dir) bool { return dir.exists(ClusterCA().KeyPath()) }
