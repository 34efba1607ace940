package ssh

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// KnownHosts checks host keys against a known_hosts file kept in the
// cluster's state directory. A host seen for the first time is trusted and
// recorded (its fingerprint reported through OnNewKey); a host whose key
// changed is refused with a *HostKeyChangedError. kubeforge never turns
// host-key checking off.
type KnownHosts struct {
	Path string
	// OnNewKey is told about every key recorded on first use.
	OnNewKey func(host, addr, fingerprint string)

	mu sync.Mutex
}

// HostKeyChangedError is a host presenting a key other than the one
// recorded for it.
type HostKeyChangedError struct {
	Host      string   // the host's name in the cluster file
	Addr      string   // host:port
	Known     []string // fingerprints on record
	Presented string   // fingerprint the host presented
	File      string   // the known_hosts file
}

// HostName is the host's name in the cluster file.
func (e *HostKeyChangedError) HostName() string { return e.Host }

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("host %s (%s): SSH host key changed: %s has %s, the host presented %s. "+
		"The host may have been reinstalled, or someone may be intercepting the connection: check the key on the host "+
		"(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) before accepting it",
		e.Host, e.Addr, e.File, strings.Join(e.Known, ", "), e.Presented)
}

// Fingerprint is the SHA256 fingerprint ssh-keygen -l prints.
func Fingerprint(key xssh.PublicKey) string { return xssh.FingerprintSHA256(key) }

// Callback returns the host key callback for one host.
func (k *KnownHosts) Callback(hostName string) xssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key xssh.PublicKey) error {
		k.mu.Lock()
		defer k.mu.Unlock()
		check, err := k.load()
		if err != nil {
			return err
		}
		err = check(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			if err := k.appendKey(hostname, key); err != nil {
				return err
			}
			if k.OnNewKey != nil {
				k.OnNewKey(hostName, hostname, Fingerprint(key))
			}
			return nil
		case errors.As(err, &keyErr):
			known := make([]string, 0, len(keyErr.Want))
			for _, w := range keyErr.Want {
				known = append(known, fmt.Sprintf("%s (line %d)", Fingerprint(w.Key), w.Line))
			}
			return &HostKeyChangedError{Host: hostName, Addr: hostname, Known: known, Presented: Fingerprint(key), File: k.Path}
		default:
			return fmt.Errorf("known_hosts %s: %w", k.Path, err)
		}
	}
}

// load parses the file; a missing file knows no host.
func (k *KnownHosts) load() (xssh.HostKeyCallback, error) {
	if _, err := os.Stat(k.Path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(k.Path, nil, 0o600); err != nil {
			return nil, fmt.Errorf("create %s: %w", k.Path, err)
		}
	}
	cb, err := knownhosts.New(k.Path)
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", k.Path, err)
	}
	return cb, nil
}

func (k *KnownHosts) appendKey(addr string, key xssh.PublicKey) error {
	f, err := os.OpenFile(k.Path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(addr)}, key))
	return err
}

// Replace forgets every key recorded for addr and records key instead:
// the deliberate acceptance of a changed host key.
func (k *KnownHosts) Replace(addr string, key xssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	norm := knownhosts.Normalize(addr)
	var kept []string
	if f, err := os.Open(k.Path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if !lineHasHost(line, norm) {
				kept = append(kept, line)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	kept = append(kept, knownhosts.Line([]string{norm}, key))
	return atomicfile.Write(k.Path, []byte(strings.Join(kept, "\n")+"\n"), 0o600, 0o700)
}

func lineHasHost(line, norm string) bool {
	fields := strings.Fields(line)
	if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
		return false
	}
	for _, h := range strings.Split(fields[0], ",") {
		if h == norm {
			return true
		}
	}
	return false
}
