package certs

// The cfssl adapter: the only file that sees cfssl's types. The table and
// everything else speak crypto/x509 and this package's requests.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/initca"
	cflog "github.com/cloudflare/cfssl/log"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
)

func init() {
	// cfssl logs every request at info level to stderr; kubeforge reports
	// what it does itself.
	cflog.Level = cflog.LevelError
}

// clockSkew backdates new certificates so that hosts whose clocks run a
// little behind accept them at once.
const clockSkew = 5 * time.Minute

// keyRequest maps a key algorithm to cfssl's request.
func keyRequest(alg KeyAlgorithm) (*csr.KeyRequest, error) {
	switch alg {
	case ECDSAP256, "":
		return &csr.KeyRequest{A: "ecdsa", S: 256}, nil
	case RSA2048:
		return &csr.KeyRequest{A: "rsa", S: 2048}, nil
	case RSA4096:
		return &csr.KeyRequest{A: "rsa", S: 4096}, nil
	}
	return nil, fmt.Errorf("unknown key algorithm %q (ecdsa-p256, rsa-2048 or rsa-4096)", alg)
}

// newCA creates a self-signed CA with cfssl's initca.
func newCA(commonName string, alg KeyAlgorithm, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	kr, err := keyRequest(alg)
	if err != nil {
		return nil, nil, err
	}
	req := &csr.CertificateRequest{
		CN:         commonName,
		KeyRequest: kr,
		CA:         &csr.CAConfig{Expiry: validity.String(), Backdate: clockSkew.String()},
	}
	certPEM, _, keyPEM, err = initca.New(req)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA %s: %w", commonName, err)
	}
	return certPEM, keyPEM, nil
}

// leafRequest is a certificate to issue.
type leafRequest struct {
	Subject  pkix.Name
	AltNames AltNames
	Usages   []x509.ExtKeyUsage
	Key      KeyAlgorithm
	Validity time.Duration
	Now      time.Time
}

// signLeaf makes a new key and a CSR for req with cfssl and signs it with
// the CA through cfssl's local signer. The certificate never outlives the
// CA.
func signLeaf(ca *authorityPair, req leafRequest) (certPEM, keyPEM []byte, err error) {
	kr, err := keyRequest(req.Key)
	if err != nil {
		return nil, nil, err
	}
	hosts := req.AltNames.strings()
	csrPEM, keyPEM, err := csr.ParseRequest(&csr.CertificateRequest{
		CN:         req.Subject.CommonName,
		Names:      subjectNames(req.Subject),
		Hosts:      hosts,
		KeyRequest: kr,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("key and CSR for %s: %w", req.Subject.CommonName, err)
	}
	usages := []string{"digital signature"}
	if kr.A == "rsa" {
		usages = append(usages, "key encipherment")
	}
	for _, u := range req.Usages {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			usages = append(usages, "server auth")
		case x509.ExtKeyUsageClientAuth:
			usages = append(usages, "client auth")
		default:
			return nil, nil, fmt.Errorf("%s: unsupported extended key usage %v", req.Subject.CommonName, u)
		}
	}
	policy := &config.Signing{Default: &config.SigningProfile{
		Usage:        usages,
		Expiry:       req.Validity,
		ExpiryString: req.Validity.String(),
	}}
	s, err := local.NewSigner(ca.key, ca.cert, signer.DefaultSigAlgo(ca.key), policy)
	if err != nil {
		return nil, nil, fmt.Errorf("signer for %s: %w", ca.cert.Subject.CommonName, err)
	}
	notBefore := req.Now.Add(-clockSkew)
	notAfter := req.Now.Add(req.Validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	certPEM, err = s.Sign(signer.SignRequest{
		Hosts:     hosts,
		Request:   string(csrPEM),
		NotBefore: notBefore,
		NotAfter:  notAfter,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s with %s: %w", req.Subject.CommonName, ca.cert.Subject.CommonName, err)
	}
	return certPEM, keyPEM, nil
}

// subjectNames turns the subject's attributes (but the CN) into cfssl's
// names, one per organization so every group survives.
func subjectNames(s pkix.Name) []csr.Name {
	var out []csr.Name
	for _, o := range s.Organization {
		out = append(out, csr.Name{O: o})
	}
	for _, ou := range s.OrganizationalUnit {
		out = append(out, csr.Name{OU: ou})
	}
	first := func(v []string) string {
		if len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if c, st, l := first(s.Country), first(s.Province), first(s.Locality); c != "" || st != "" || l != "" {
		out = append(out, csr.Name{C: c, ST: st, L: l})
	}
	return out
}

// newKeyPair generates a bare key pair (the service-account signing key)
// with cfssl's key generator.
func newKeyPair(alg KeyAlgorithm) (keyPEM, pubPEM []byte, err error) {
	kr, err := keyRequest(alg)
	if err != nil {
		return nil, nil, err
	}
	priv, err := kr.Generate()
	if err != nil {
		return nil, nil, err
	}
	var block *pem.Block
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, nil, err
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case *rsa.PrivateKey:
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	default:
		return nil, nil, fmt.Errorf("unexpected key type %T", priv)
	}
	pub, err := publicKeyPEM(priv.(crypto.Signer).Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(block), pub, nil
}

func publicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
