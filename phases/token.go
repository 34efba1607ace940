package phases

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/statedir"
)

// Token is the bootstrap token nodes join with.
type Token = bootstraptoken.Token

// BootstrapGroup is the group nodes joining with a token belong to.
const BootstrapGroup = bootstraptoken.Group

// TokenTTL is how long init's bootstrap token lives.
const TokenTTL = bootstraptoken.DefaultTTL

// LoadOrCreateToken returns the cluster's current bootstrap token from the
// state directory, or a new one when there is none or it has less than an
// hour left.
func LoadOrCreateToken(stateDir statedir.Dir, now time.Time) (Token, error) {
	t, fresh, err := readToken(stateDir, now)
	if err != nil || !fresh {
		return t, err
	}
	data := fmt.Sprintf("%s\n%s\n", t, t.Expires.Format(time.RFC3339))
	if err := atomicfile.Write(stateDir.Token(), []byte(data), 0o600, 0o700); err != nil {
		return Token{}, fmt.Errorf("save the bootstrap token: %w", err)
	}
	return t, nil
}

// PeekToken is LoadOrCreateToken without saving a new token (--dry-run).
func PeekToken(stateDir statedir.Dir, now time.Time) (Token, error) {
	t, _, err := readToken(stateDir, now)
	return t, err
}

// readToken returns the saved token, or a new one (fresh) when there is
// none or it has less than an hour left.
func readToken(stateDir statedir.Dir, now time.Time) (Token, bool, error) {
	data, err := os.ReadFile(stateDir.Token())
	if err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) == 2 {
			t, perr := bootstraptoken.Parse(lines[0])
			exp, err := time.Parse(time.RFC3339, lines[1])
			if perr == nil && err == nil && exp.Sub(now) > time.Hour {
				t.Expires = exp
				return t, false, nil
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Token{}, false, err
	}
	return bootstraptoken.New(now, TokenTTL), true, nil
}

// CACertHash is kubeadm's --discovery-token-ca-cert-hash of a CA.
func CACertHash(caPEM []byte) (string, error) { return bootstraptoken.CACertHash(caPEM) }
