package certs

import (
	"strings"
	"testing"
	"time"
)

// A rotation walks the three states, each a configuration the API
// server reads, and a second AddKey during one finishes it instead.
func TestEncryptionRotation(t *testing.T) {
	dir := Dir(t.TempDir())
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if _, err := EnsureEncryption(dir, t0, false, false); err != nil {
		t.Fatal(err)
	}
	e := mustRead(t, dir)
	first, ok := e.Writer()
	if !ok || !e.Settled() || first.Name != "kubeforge-20261204T100000Z" {
		t.Fatalf("a new cluster's first key writes alone: %+v", e)
	}
	if c, _ := first.Created(); !c.Equal(t0) {
		t.Errorf("created %v, want %v", c, t0)
	}
	steps := []struct {
		do        func(*Encryption) error
		providers string // the configuration's providers, in order
	}{
		{func(e *Encryption) error { _, err := e.AddKey(t0.Add(time.Hour)); return err }, "secretbox[20261204T100000Z 20261204T110000Z]"},
		{func(e *Encryption) error { _, err := e.AddKey(t0.Add(2 * time.Hour)); return err }, "secretbox[20261204T100000Z 20261204T110000Z]"},
		{func(e *Encryption) error { e.PromoteNewest(); return nil }, "secretbox[20261204T110000Z 20261204T100000Z]"},
		{func(e *Encryption) error { return e.DropOld() }, "secretbox[20261204T110000Z]"},
	}
	for i, s := range steps {
		e := mustRead(t, dir)
		if err := s.do(e); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteEncryption(dir, e); err != nil {
			t.Fatal(err)
		}
		if got := providers(mustRead(t, dir)); got != s.providers {
			t.Errorf("step %d: %s, want %s", i+1, got, s.providers)
		}
	}
}

// A cluster made before encryption reads with the new key first, then
// writes with it while still reading plaintext, then drops plaintext.
func TestEncryptionFromPlaintext(t *testing.T) {
	dir := Dir(t.TempDir())
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if _, err := EnsureEncryption(dir, t0, true, false); err != nil {
		t.Fatal(err)
	}
	e := mustRead(t, dir)
	if _, ok := e.Writer(); ok || providers(e) != "identity secretbox[20261204T100000Z]" {
		t.Fatalf("made before encryption: identity still writes: %s", providers(e))
	}
	if added, _ := e.AddKey(t0.Add(time.Hour)); added {
		t.Fatal("a second key during a migration")
	}
	e.PromoteNewest()
	if providers(e) != "secretbox[20261204T100000Z] identity" {
		t.Fatalf("promoted: %s", providers(e))
	}
	data, err := e.Config()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "kind: EncryptionConfiguration") {
		t.Fatalf("%s", data)
	}
	if err := e.DropOld(); err != nil || !e.Settled() {
		t.Fatalf("dropped: %s, %v", providers(e), err)
	}
}

func TestParseEncryptionRefusesOthers(t *testing.T) {
	for _, bad := range []string{
		"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, configmaps]\n  providers: [{identity: {}}]\n",
		"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: k, secret: c2hvcnQ=}]}\n",
		"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: k, secret: c2hvcnQ=}]}\n",
	} {
		if _, err := ParseEncryption([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func mustRead(t *testing.T, dir Dir) *Encryption {
	t.Helper()
	e, err := ReadEncryption(dir)
	if err != nil || e == nil {
		t.Fatalf("read: %v, %v", e, err)
	}
	return e
}

// providers renders the order of the parsed configuration.
func providers(e *Encryption) string {
	var out []string
	if e.PlaintextWrites {
		out = append(out, "identity")
	}
	var keys []string
	for _, k := range e.Keys {
		keys = append(keys, strings.TrimPrefix(k.Name, encryptionKeyPrefix))
	}
	out = append(out, "secretbox["+strings.Join(keys, " ")+"]")
	if e.PlaintextReads {
		out = append(out, "identity")
	}
	return strings.Join(out, " ")
}
