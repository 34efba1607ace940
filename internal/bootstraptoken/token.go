// Package bootstraptoken is the bootstrap token a node joins with, in
// kubeadm's format ([a-z0-9]{6}.[a-z0-9]{16}), and the hash by which a
// joining node pins the cluster's CA (--discovery-token-ca-cert-hash).
package bootstraptoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// Token is a bootstrap token: ID is public (it names the Secret), Secret
// is the password.
type Token struct {
	ID      string
	Secret  string
	Expires time.Time // zero: never
}

func (t Token) String() string { return t.ID + "." + t.Secret }

var format = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// Group is the group nodes joining with a kubeforge (or kubeadm) token
// belong to; RBAC lets it ask for a node certificate.
const Group = "system:bootstrappers:kubeadm:default-node-token"

// DefaultTTL is how long a new token lives.
const DefaultTTL = 24 * time.Hour

// SecretName is the name of the kube-system Secret holding a token.
func SecretName(id string) string { return "bootstrap-token-" + id }

// Parse reads "abcdef.0123456789abcdef".
func Parse(s string) (Token, error) {
	m := format.FindStringSubmatch(s)
	if m == nil {
		return Token{}, fmt.Errorf("a bootstrap token is 6 and 16 characters of [a-z0-9] joined by a dot (abcdef.0123456789abcdef); got %d characters", len(s))
	}
	return Token{ID: m[1], Secret: m[2]}, nil
}

// New returns a random token that expires ttl after now (never for ttl 0).
func New(now time.Time, ttl time.Duration) Token {
	t := Token{ID: random(6), Secret: random(16)}
	if ttl > 0 {
		t.Expires = now.Add(ttl).UTC().Truncate(time.Second)
	}
	return t
}

func random(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// HashPrefix starts every CA hash: the only kind kubeadm defines.
const HashPrefix = "sha256:"

// CACertHash is kubeadm's --discovery-token-ca-cert-hash of a PEM CA
// certificate: sha256 of its SubjectPublicKeyInfo.
func CACertHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return "", errors.New("CA certificate: not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("CA certificate: %w", err)
	}
	return HashOf(cert), nil
}

// HashOf is the pin of a parsed certificate.
func HashOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return HashPrefix + hex.EncodeToString(sum[:])
}

// ParseCAHash checks a --discovery-token-ca-cert-hash value and returns it
// in canonical (lowercase) form.
func ParseCAHash(s string) (string, error) {
	rest, ok := strings.CutPrefix(strings.ToLower(s), HashPrefix)
	if !ok {
		return "", fmt.Errorf("a CA hash starts with %q (as 'kubeforge token create --print-join-command' prints it); got %q", HashPrefix, s)
	}
	if b, err := hex.DecodeString(rest); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("a CA hash is %q and 64 hexadecimal digits; got %d characters after the prefix", HashPrefix, len(rest))
	}
	return HashPrefix + rest, nil
}
