package certs

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// EncryptionConfigPath is the API servers' EncryptionConfiguration in the
// state directory, beside the service-account key: a cluster secret that
// every control plane holds and a control plane joining on its own
// fetches (SharedFiles).
func EncryptionConfigPath() string { return path.Join(PKIDir, "encryption-config.yaml") }

// Encryption is how the API servers encrypt Secrets in etcd: secretbox
// (XSalsa20-Poly1305) keys of 32 random bytes, the first of the list
// writing and all of them reading, and the identity provider (plaintext)
// where a cluster still holds Secrets written before encryption.
//
// A key rotation goes through three states, each rolled out to every API
// server before the next (an API server must be able to read what
// another writes): the new key added as a reader, the new key made the
// writer (every Secret then rewritten), the old keys dropped.
type Encryption struct {
	// Keys are in the configuration's order: the first writes, unless
	// PlaintextWrites.
	Keys []EncryptionKey
	// PlaintextWrites: identity comes first (a cluster made before
	// encryption, its first key not yet the writer).
	PlaintextWrites bool
	// PlaintextReads: identity comes last, so Secrets written before
	// encryption stay readable until they are rewritten.
	PlaintextReads bool
}

// EncryptionKey is one secretbox key.
type EncryptionKey struct {
	// Name says when it was made: kubeforge-20261204T101500Z.
	Name   string
	Secret []byte
}

// encryptionKeyPrefix starts every key name; the rest is its creation
// time.
const encryptionKeyPrefix = "kubeforge-"

// Created is when the key was made, read from its name.
func (k EncryptionKey) Created() (time.Time, bool) {
	t, err := time.Parse("20060102T150405Z", strings.TrimPrefix(k.Name, encryptionKeyPrefix))
	return t, err == nil
}

// StoragePrefix starts every value the key encrypted in etcd.
func (k EncryptionKey) StoragePrefix() string { return "k8s:enc:secretbox:v1:" + k.Name + ":" }

// NewEncryptionKey makes a key named for now.
func NewEncryptionKey(now time.Time) (EncryptionKey, error) {
	k := EncryptionKey{Name: encryptionKeyPrefix + now.UTC().Format("20060102T150405Z"), Secret: make([]byte, 32)}
	_, err := rand.Read(k.Secret)
	return k, err
}

// Writer is the key that encrypts new writes; false when identity does
// (or there is no key).
func (e *Encryption) Writer() (EncryptionKey, bool) {
	if e.PlaintextWrites || len(e.Keys) == 0 {
		return EncryptionKey{}, false
	}
	return e.Keys[0], true
}

// Newest is the most recently made key.
func (e *Encryption) Newest() EncryptionKey {
	return slices.MaxFunc(e.Keys, func(a, b EncryptionKey) int { return strings.Compare(a.Name, b.Name) })
}

// Settled reports whether there is one key, writing, and nothing else: no
// rotation under way, no plaintext left to read.
func (e *Encryption) Settled() bool {
	return len(e.Keys) == 1 && !e.PlaintextWrites && !e.PlaintextReads
}

// AddKey adds a new key as a reader only, the first state of a rotation.
// A rotation under way (more than one key, or plaintext still written)
// gets no other key: it is finished instead.
func (e *Encryption) AddKey(now time.Time) (added bool, err error) {
	if len(e.Keys) > 1 || (e.PlaintextWrites && len(e.Keys) > 0) {
		return false, nil
	}
	if len(e.Keys) > 0 {
		// The new key's name must sort last, and say when it was made:
		// two rotations within a second take the next second.
		if last, ok := e.Keys[0].Created(); ok && !now.After(last) {
			now = last.Add(time.Second)
		}
	}
	k, err := NewEncryptionKey(now)
	if err != nil {
		return false, err
	}
	e.Keys = append(e.Keys, k)
	return true, nil
}

// PromoteNewest makes the newest key the writer; the others, and
// identity, still read.
func (e *Encryption) PromoteNewest() {
	newest := e.Newest()
	keys := []EncryptionKey{newest}
	for _, k := range e.Keys {
		if k.Name != newest.Name {
			keys = append(keys, k)
		}
	}
	e.Keys = keys
	if e.PlaintextWrites {
		e.PlaintextWrites, e.PlaintextReads = false, true
	}
}

// DropOld keeps only the writer: every Secret must have been rewritten
// with it first.
func (e *Encryption) DropOld() error {
	w, ok := e.Writer()
	if !ok {
		return errors.New("no key writes yet: make the newest key the writer first")
	}
	e.Keys, e.PlaintextReads = []EncryptionKey{w}, false
	return nil
}

// Config renders the EncryptionConfiguration of Secrets.
func (e *Encryption) Config() ([]byte, error) {
	var providers []apiserverv1.ProviderConfiguration
	identity := apiserverv1.ProviderConfiguration{Identity: &apiserverv1.IdentityConfiguration{}}
	if e.PlaintextWrites {
		providers = append(providers, identity)
	}
	if len(e.Keys) > 0 {
		box := &apiserverv1.SecretboxConfiguration{}
		for _, k := range e.Keys {
			box.Keys = append(box.Keys, apiserverv1.Key{Name: k.Name, Secret: base64.StdEncoding.EncodeToString(k.Secret)})
		}
		providers = append(providers, apiserverv1.ProviderConfiguration{Secretbox: box})
	}
	if e.PlaintextReads && !e.PlaintextWrites {
		providers = append(providers, identity)
	}
	cfg := apiserverv1.EncryptionConfiguration{
		TypeMeta:  metav1.TypeMeta{APIVersion: "apiserver.config.k8s.io/v1", Kind: "EncryptionConfiguration"},
		Resources: []apiserverv1.ResourceConfiguration{{Resources: []string{"secrets"}, Providers: providers}},
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Written by kubeforge: Secrets are encrypted in etcd with the first provider's first key.\n"+
		"# Change it with 'kubeforge secrets rotate-key', never by hand.\n"), data...), nil
}

// ParseEncryption reads what Config wrote.
func ParseEncryption(data []byte) (*Encryption, error) {
	var cfg apiserverv1.EncryptionConfiguration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.Resources) != 1 || !slices.Equal(cfg.Resources[0].Resources, []string{"secrets"}) {
		return nil, errors.New("not kubeforge's: it should configure the secrets resource only")
	}
	e := &Encryption{}
	providers := cfg.Resources[0].Providers
	for i, p := range providers {
		switch {
		case p.Identity != nil && i == 0 && len(providers) > 1:
			e.PlaintextWrites = true
		case p.Identity != nil && i == len(providers)-1:
			e.PlaintextReads = true
		case p.Secretbox != nil && len(e.Keys) == 0:
			for _, k := range p.Secretbox.Keys {
				secret, err := base64.StdEncoding.DecodeString(k.Secret)
				if err != nil || len(secret) != 32 {
					return nil, fmt.Errorf("key %s: not 32 bytes in base64", k.Name)
				}
				e.Keys = append(e.Keys, EncryptionKey{Name: k.Name, Secret: secret})
			}
		default:
			return nil, fmt.Errorf("provider %d: not kubeforge's (secretbox keys, identity first or last)", i+1)
		}
	}
	if e.PlaintextWrites && e.PlaintextReads {
		e.PlaintextReads = false
	}
	if len(e.Keys) == 0 {
		return nil, errors.New("no secretbox key")
	}
	return e, nil
}

// ReadEncryption reads the state directory's configuration; nil when the
// cluster has none yet (made before encryption).
func ReadEncryption(dir Dir) (*Encryption, error) {
	data, err := os.ReadFile(dir.path(EncryptionConfigPath()))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := ParseEncryption(data)
	if err != nil {
		return nil, &FileError{Path: dir.path(EncryptionConfigPath()), Problem: err.Error()}
	}
	return e, nil
}

// WriteEncryption stores the configuration (0600); false when the file
// held it already.
func WriteEncryption(dir Dir, e *Encryption) (bool, error) {
	data, err := e.Config()
	if err != nil {
		return false, err
	}
	p := dir.path(EncryptionConfigPath())
	if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, data) {
		return false, nil
	}
	return true, atomicfile.Write(p, data, keyMode, dirMode)
}

// EnsureEncryption gives a cluster its first key when it has none: the
// writer from the start for a new cluster; for one made before
// encryption (plaintextBefore), a reader first, so that no API server
// writes what another cannot read yet (`secrets rotate-key` goes on).
func EnsureEncryption(dir Dir, now time.Time, plaintextBefore, dryRun bool) ([]Result, error) {
	e, err := ReadEncryption(dir)
	if err != nil || e != nil {
		return nil, err
	}
	res := Result{Name: "encryption key (Secrets at rest)", Path: EncryptionConfigPath(), Action: Created}
	if plaintextBefore {
		res.Reason = "reads only; 'kubeforge secrets rotate-key' makes it encrypt and rewrites the Secrets"
	}
	if dryRun {
		return []Result{res}, nil
	}
	e = &Encryption{PlaintextWrites: plaintextBefore}
	if _, err := e.AddKey(now); err != nil {
		return nil, err
	}
	_, err = WriteEncryption(dir, e)
	return []Result{res}, err
}
