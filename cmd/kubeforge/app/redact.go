package app

import (
	"log/slog"
	"regexp"
	"strings"
	"sync"
)

// redactor removes secrets from everything kubeforge logs: the values of
// the secrets it handed out (passwords, passphrases), bootstrap tokens and
// PEM private keys.
type redactor struct {
	mu      sync.RWMutex
	secrets []string
}

var (
	bootstrapToken = regexp.MustCompile(`\b([a-z0-9]{6})\.[a-z0-9]{16}\b`)
	pemPrivateKey  = regexp.MustCompile(`(?s)-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END ([A-Z ]*)PRIVATE KEY-----`)
	keyData        = regexp.MustCompile(`(client-key-data|token|password):\s*\S+`)
)

const redacted = "[REDACTED]"

// add registers a secret value.
func (r *redactor) add(secret string) {
	if len(secret) < 4 { // too short to find without destroying the log
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = append(r.secrets, secret)
}

// String returns s without secrets.
func (r *redactor) String(s string) string {
	r.mu.RLock()
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	r.mu.RUnlock()
	s = pemPrivateKey.ReplaceAllString(s, "-----BEGIN ${1}PRIVATE KEY----- "+redacted+" -----END ${2}PRIVATE KEY-----")
	s = bootstrapToken.ReplaceAllString(s, "$1."+redacted)
	return keyData.ReplaceAllString(s, "$1: "+redacted)
}

// replaceAttr is the slog hook applying the redactor to every value.
func (r *redactor) replaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.String(a.Value.String()))
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			return slog.String(a.Key, r.String(v.Error()))
		case []string:
			out := make([]string, len(v))
			for i, s := range v {
				out[i] = r.String(s)
			}
			return slog.Any(a.Key, out)
		}
	}
	return a
}
