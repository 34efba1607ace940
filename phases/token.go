package phases

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// Token is a bootstrap token, kubeadm's format: [a-z0-9]{6}.[a-z0-9]{16}.
type Token struct {
	ID      string
	Secret  string
	Expires time.Time
}

func (t Token) String() string { return t.ID + "." + t.Secret }

var tokenFormat = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// BootstrapGroup is the group nodes joining with a token belong to.
const BootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"

// TokenTTL is how long a bootstrap token lives.
const TokenTTL = 24 * time.Hour

// LoadOrCreateToken returns the cluster's current bootstrap token from the
// state directory, or a new one when there is none or it has less than an
// hour left.
func LoadOrCreateToken(stateDir string, now time.Time) (Token, error) {
	t, fresh, err := readToken(stateDir, now)
	if err != nil || !fresh {
		return t, err
	}
	data := fmt.Sprintf("%s\n%s\n", t, t.Expires.Format(time.RFC3339))
	if err := atomicfile.Write(filepath.Join(stateDir, tokenFile), []byte(data), 0o600, 0o700); err != nil {
		return Token{}, fmt.Errorf("save the bootstrap token: %w", err)
	}
	return t, nil
}

// PeekToken is LoadOrCreateToken without saving a new token (--dry-run).
func PeekToken(stateDir string, now time.Time) (Token, error) {
	t, _, err := readToken(stateDir, now)
	return t, err
}

const tokenFile = "bootstrap-token"

// readToken returns the saved token, or a new one (fresh) when there is
// none or it has less than an hour left.
func readToken(stateDir string, now time.Time) (Token, bool, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, tokenFile))
	if err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) == 2 {
			m := tokenFormat.FindStringSubmatch(lines[0])
			exp, err := time.Parse(time.RFC3339, lines[1])
			if m != nil && err == nil && exp.Sub(now) > time.Hour {
				return Token{ID: m[1], Secret: m[2], Expires: exp}, false, nil
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Token{}, false, err
	}
	return Token{ID: randomString(6), Secret: randomString(16), Expires: now.Add(TokenTTL).UTC().Truncate(time.Second)}, true, nil
}

func randomString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// CACertHash is kubeadm's --discovery-token-ca-cert-hash of a CA
// certificate: sha256 of its SubjectPublicKeyInfo.
func CACertHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return "", errors.New("CA certificate: not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
