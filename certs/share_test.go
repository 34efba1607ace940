package certs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	hexKey, err := NewCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseCertificateKey(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(key, []byte("ca key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("ca key")) {
		t.Fatal("plain text in the sealed data")
	}
	if got, err := Open(key, sealed); err != nil || string(got) != "ca key" {
		t.Fatalf("open: %q %v", got, err)
	}
	other, _ := NewCertificateKey()
	otherKey, _ := ParseCertificateKey(other)
	if _, err := Open(otherKey, sealed); !errors.Is(err, ErrWrongCertificateKey) {
		t.Errorf("another key: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := Open(key, sealed); !errors.Is(err, ErrWrongCertificateKey) {
		t.Errorf("tampered: %v", err)
	}
	if _, err := Open(key, []byte("short")); !errors.Is(err, ErrWrongCertificateKey) {
		t.Errorf("short: %v", err)
	}
	for _, bad := range []string{"", hexKey[:62], hexKey + "00", strings.Repeat("z", 64)} {
		if _, err := ParseCertificateKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSharedFilesRoundTrip(t *testing.T) {
	src := generate(t, testSpec())
	files, err := ReadShared(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 8 {
		t.Fatalf("%d shared files: %v", len(files), files)
	}
	for rel := range files {
		key := SharedKey(rel)
		if strings.Contains(key, "/") {
			t.Errorf("%s: key %s has a slash", rel, key)
		}
		if back, ok := SharedPath(key); !ok || back != rel {
			t.Errorf("%s -> %s -> %s", rel, key, back)
		}
	}
	// A joining control plane's directory: the shared files, then its own
	// certificates issued from them, chaining to the same CAs.
	dst := Dir(t.TempDir())
	if err := WriteShared(dst, files); err != nil {
		t.Fatal(err)
	}
	s := testSpec().ForNode("cp2")
	if len(s.ControlPlanes) != 1 || s.ControlPlanes[0].Name != "cp2" || len(s.EtcdMembers) != 1 {
		t.Fatalf("ForNode: %+v", s)
	}
	results, err := Generate(s, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Name == CAName && r.Action != Kept {
			t.Errorf("CA %s", r.Action)
		}
	}
	api, err := dst.readCert("nodes/cp2/pki/apiserver.crt")
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := src.loadAuthority(ClusterCA(), true)
	if err := ca.verify(api); err != nil {
		t.Errorf("the joiner's apiserver certificate: %v", err)
	}
	if dst.exists("nodes/cp1/pki/apiserver.crt") {
		t.Error("a joining control plane issued another's certificate")
	}
	// Again: no-op. Another cluster's CA: refused.
	if err := WriteShared(dst, files); err != nil {
		t.Fatal(err)
	}
	foreign, _ := ReadShared(generate(t, testSpec()))
	var fe *FileError
	if err := WriteShared(dst, foreign); !errors.As(err, &fe) {
		t.Errorf("another cluster's CA: %v", err)
	}
	if err := WriteShared(dst, map[string][]byte{"../etc/passwd": []byte("x")}); err == nil {
		t.Error("a path outside the shared files was written")
	}
}
