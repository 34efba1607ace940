package certs

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
)

// SharedFiles are what a control plane cannot issue itself, relative to
// the PKI directory's parent: the three CAs, the service-account key
// pair and the encryption configuration of Secrets (which a cluster made
// before encryption may lack: OptionalShared). A control plane joining on its own fetches them from the cluster,
// encrypted under the certificate key (kubeadm's --upload-certs model);
// it issues every other certificate of its own from them.
func SharedFiles() []string {
	var out []string
	for _, a := range Authorities() {
		out = append(out, a.CertPath(), a.KeyPath())
	}
	return append(out, SAPrivateKeyPath(), SAPublicKeyPath(), EncryptionConfigPath())
}

// OptionalShared reports whether a shared file may be missing: the
// encryption configuration of a cluster made before encryption.
func OptionalShared(rel string) bool { return rel == EncryptionConfigPath() }

// SharedKey is the key a shared file has in the Secret that carries it:
// "pki/etcd/ca.crt" is "etcd-ca.crt" (Secret keys have no slashes).
func SharedKey(rel string) string {
	return strings.ReplaceAll(strings.TrimPrefix(rel, PKIDir+"/"), "/", "-")
}

// SharedPath is the inverse of SharedKey for the files SharedFiles lists.
func SharedPath(key string) (string, bool) {
	for _, f := range SharedFiles() {
		if SharedKey(f) == key {
			return f, true
		}
	}
	return "", false
}

// CertificateKeySize is the certificate key's length: AES-256.
const CertificateKeySize = 32

// NewCertificateKey returns a random certificate key, hex-encoded.
func NewCertificateKey() (string, error) {
	b := make([]byte, CertificateKeySize)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ParseCertificateKey checks a --certificate-key value.
func ParseCertificateKey(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != CertificateKeySize {
		return nil, fmt.Errorf("a certificate key is %d hexadecimal digits (as 'kubeforge init phase upload-certs' prints it); got %d characters",
			2*CertificateKeySize, len(s))
	}
	return b, nil
}

// ErrWrongCertificateKey is data that the key does not open: another
// key sealed it, or it was changed.
var ErrWrongCertificateKey = errors.New("the certificate key does not decrypt it")

// Seal encrypts data with AES-256-GCM under key: a random nonce, then the
// ciphertext and its tag.
func Seal(key, data []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, data, nil), nil
}

// Open decrypts what Seal made; ErrWrongCertificateKey when key does not
// open it.
func Open(key, sealed []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, ErrWrongCertificateKey
	}
	data, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return nil, ErrWrongCertificateKey
	}
	return data, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != CertificateKeySize {
		return nil, fmt.Errorf("certificate key: %d bytes, want %d", len(key), CertificateKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// ReadShared reads the shared files of dir.
func ReadShared(dir Dir) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, f := range SharedFiles() {
		if OptionalShared(f) && !dir.exists(f) {
			continue
		}
		data, err := dir.read(f)
		if err != nil {
			return nil, err
		}
		out[f] = data
	}
	return out, nil
}

// WriteShared writes shared files into dir (keys 0600), refusing any
// other path and never replacing a CA that differs. The encryption
// configuration is replaced: it changes with each key rotation.
func WriteShared(dir Dir, files map[string][]byte) error {
	for rel, data := range files {
		if _, ok := SharedPath(SharedKey(rel)); !ok || path.Clean(rel) != rel {
			return fmt.Errorf("%s is not a shared PKI file", rel)
		}
		if dir.exists(rel) {
			have, err := dir.read(rel)
			if err != nil {
				return err
			}
			if string(have) != string(data) && !OptionalShared(rel) {
				return &FileError{Path: dir.path(rel), Problem: "differs from the cluster's: this directory belongs to another cluster; move it away"}
			}
			if string(have) == string(data) {
				continue
			}
		}
		mode := os.FileMode(certMode)
		if strings.HasSuffix(rel, KeyExt) || rel == EncryptionConfigPath() {
			mode = os.FileMode(keyMode)
		}
		if err := dir.write(rel, data, mode); err != nil {
			return err
		}
	}
	return nil
}
