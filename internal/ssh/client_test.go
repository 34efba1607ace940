package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"
)

// userKey writes a private key file (encrypted when passphrase is set).
func userKey(t *testing.T, passphrase string) (string, xssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = xssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	} else {
		block, err = xssh.MarshalPrivateKey(priv, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, _ := xssh.NewPublicKey(pub)
	return path, sshPub
}

func dialTo(t *testing.T, s *testServer, cfg Config) (*Client, error) {
	t.Helper()
	cfg.Addr, cfg.Port = s.hostPort()
	if cfg.Host == "" {
		cfg.Host = "h1"
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, cfg)
}

func TestTrustOnFirstUseThenRefuseChangedKey(t *testing.T) {
	keyPath, pub := userKey(t, "")
	known := &KnownHosts{Path: filepath.Join(t.TempDir(), "state", "known_hosts")}
	var recorded []string
	known.OnNewKey = func(host, addr, fp string) { recorded = append(recorded, host+" "+fp) }

	s := startServer(t, &testServer{userKey: pub})
	c, err := dialTo(t, s, Config{KeyPath: keyPath, KnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	firstFP := Fingerprint(s.hostKey.PublicKey())
	if len(recorded) != 1 || recorded[0] != "h1 "+firstFP {
		t.Fatalf("recorded %v", recorded)
	}
	if fi, _ := os.Stat(known.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v", fi.Mode().Perm())
	}
	// Second connection: known, nothing recorded.
	c, err = dialTo(t, s, Config{KeyPath: keyPath, KnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(recorded) != 1 {
		t.Fatalf("recorded again: %v", recorded)
	}

	// The same address with a new host key: refused with both fingerprints.
	s.listener.Close()
	s2 := startServerAt(t, s.addr, &testServer{userKey: pub})
	_, err = dialTo(t, s2, Config{KeyPath: keyPath, KnownHosts: known})
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("dial with a changed key: %v", err)
	}
	newFP := Fingerprint(s2.hostKey.PublicKey())
	if !strings.Contains(err.Error(), firstFP) || !strings.Contains(err.Error(), newFP) || changed.Presented != newFP || changed.Host != "h1" {
		t.Fatalf("error does not show both fingerprints: %v", err)
	}

	// Deliberate acceptance.
	key, err := PresentedKey(context.Background(), Config{Addr: "127.0.0.1", Port: portOf(s2)})
	if err != nil || Fingerprint(key) != newFP {
		t.Fatalf("PresentedKey: %v %v", key, err)
	}
	if err := known.Replace(s2.addr, key); err != nil {
		t.Fatal(err)
	}
	c, err = dialTo(t, s2, Config{KeyPath: keyPath, KnownHosts: known})
	if err != nil {
		t.Fatalf("after accepting: %v", err)
	}
	c.Close()
	data, _ := os.ReadFile(known.Path)
	if strings.Count(string(data), "\n") != 1 {
		t.Errorf("known_hosts should hold one line:\n%s", data)
	}
}

func startServerAt(t *testing.T, addr string, s *testServer) *testServer {
	t.Helper()
	// Retry: the old listener's port may linger briefly.
	for i := 0; i < 50; i++ {
		s2 := &testServer{userKey: s.userKey, password: s.password, hostKey: s.hostKey, noSFTP: s.noSFTP}
		if startOn(t, s2, addr) {
			return s2
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("cannot listen on %s again", addr)
	return nil
}

func portOf(s *testServer) int { _, p := s.hostPort(); return p }

func TestRunExitCodesStdinAndCancel(t *testing.T) {
	keyPath, pub := userKey(t, "")
	s := startServer(t, &testServer{userKey: pub})
	c, err := dialTo(t, s, Config{KeyPath: keyPath, KnownHosts: &KnownHosts{Path: filepath.Join(t.TempDir(), "kh")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	res, err := c.Run(ctx, "cat; echo err >&2; exit 3", strings.NewReader("hello"))
	if err != nil || string(res.Stdout) != "hello" || strings.TrimSpace(string(res.Stderr)) != "err" || res.ExitCode != 3 {
		t.Fatalf("run: %+v %v", res, err)
	}
	// A large input arrives whole, in order (the bundle is streamed so).
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	sum := sha256.Sum256(big)
	res, err = c.Run(ctx, "sha256sum | cut -d' ' -f1", bytes.NewReader(big))
	if err != nil || strings.TrimSpace(string(res.Stdout)) != hex.EncodeToString(sum[:]) {
		t.Fatalf("16 MiB on stdin: %+v %v", res, err)
	}
	// A command that exits without reading its input does not hang Run.
	res, err = c.Run(ctx, "exit 4", bytes.NewReader(big))
	if err != nil || res.ExitCode != 4 {
		t.Fatalf("input not read: %+v %v", res, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Run(cctx, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
	// The connection is still usable for the next command.
	if res, err := c.Run(ctx, "echo ok", nil); err != nil || strings.TrimSpace(string(res.Stdout)) != "ok" {
		t.Fatalf("after cancel: %+v %v", res, err)
	}
	// SFTP is offered.
	sc, err := c.SFTP()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "f")
	f, err := sc.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "via sftp")
	f.Close()
	if data, _ := os.ReadFile(path); string(data) != "via sftp" {
		t.Fatalf("sftp wrote %q", data)
	}
}

func TestPasswordAndPassphrase(t *testing.T) {
	s := startServer(t, &testServer{password: "s3cret"})
	known := &KnownHosts{Path: filepath.Join(t.TempDir(), "kh")}
	c, err := dialTo(t, s, Config{Password: "s3cret", KnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := dialTo(t, s, Config{Password: "wrong", KnownHosts: known}); err == nil {
		t.Fatal("wrong password accepted")
	}

	keyPath, pub := userKey(t, "pass phrase")
	s2 := startServer(t, &testServer{userKey: pub})
	ask := func(string) ([]byte, error) { return []byte("pass phrase"), nil }
	c, err = dialTo(t, s2, Config{KeyPath: keyPath, Passphrase: ask, KnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = dialTo(t, s2, Config{KeyPath: keyPath, Passphrase: func(string) ([]byte, error) { return []byte("nope"), nil }, KnownHosts: known})
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := dialTo(t, s2, Config{KeyPath: keyPath, KnownHosts: known}); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("no passphrase source: %v", err)
	}
	if _, err := dialTo(t, s2, Config{KnownHosts: known}); err == nil || !strings.Contains(err.Error(), "no way to log in") {
		t.Fatalf("no credentials: %v", err)
	}
}

func TestBastion(t *testing.T) {
	keyPath, pub := userKey(t, "")
	target := startServer(t, &testServer{userKey: pub})
	jump := startServer(t, &testServer{userKey: pub})
	known := &KnownHosts{Path: filepath.Join(t.TempDir(), "kh")}
	jh, jp := jump.hostPort()
	c, err := dialTo(t, target, Config{KeyPath: keyPath, KnownHosts: known,
		Bastion: &Config{Host: "bastion", Addr: jh, Port: jp, User: "root", KeyPath: keyPath}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Run(context.Background(), "echo through", nil)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "through" {
		t.Fatalf("%+v %v", res, err)
	}
	data, _ := os.ReadFile(known.Path)
	if strings.Count(string(data), "\n") != 2 {
		t.Errorf("both the bastion's and the target's keys should be recorded:\n%s", data)
	}
}

func TestUnreachable(t *testing.T) {
	known := &KnownHosts{Path: filepath.Join(t.TempDir(), "kh")}
	keyPath, _ := userKey(t, "")
	start := time.Now()
	_, err := Dial(context.Background(), Config{Host: "gone", Addr: "127.0.0.1", Port: 1, User: "root", KeyPath: keyPath,
		KnownHosts: known, ConnectTimeout: 2 * time.Second})
	var ce *ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "host gone (127.0.0.1:1)") || time.Since(start) > 3*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

// TestManyCommandsAtOnce: more commands at once than sshd allows open
// sessions on a connection (MaxSessions, 10 by default, SFTP's included)
// wait for a free one instead of failing with "open failed".
func TestManyCommandsAtOnce(t *testing.T) {
	keyPath, pub := userKey(t, "")
	s := startServer(t, &testServer{userKey: pub, maxSessions: 10})
	c, err := dialTo(t, s, Config{KeyPath: keyPath, KnownHosts: &KnownHosts{Path: filepath.Join(t.TempDir(), "kh")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SFTP(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 25)
	for i := range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Run(context.Background(), fmt.Sprintf("sleep 0.2; echo %d", i), nil)
			if err == nil && strings.TrimSpace(string(res.Stdout)) != fmt.Sprint(i) {
				err = fmt.Errorf("command %d printed %q", i, res.Stdout)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
