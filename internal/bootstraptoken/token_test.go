package bootstraptoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tok, err := Parse("abcdef.0123456789abcdef")
	if err != nil || tok.ID != "abcdef" || tok.Secret != "0123456789abcdef" {
		t.Fatalf("%+v %v", tok, err)
	}
	for _, bad := range []string{"", "abcdef", "ABCDEF.0123456789abcdef", "abcdef.0123456789abcde", "abcdef:0123456789abcdef",
		"abcdef.0123456789abcdef\n", "abcdef.0123456789abcdef; rm -rf /"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNew(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tok := New(now, time.Hour)
	if _, err := Parse(tok.String()); err != nil {
		t.Fatal(err)
	}
	if !tok.Expires.Equal(now.Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("expires %v", tok.Expires)
	}
	if New(now, 0).Expires != (time.Time{}) {
		t.Errorf("ttl 0 expires")
	}
	if New(now, time.Hour).String() == tok.String() {
		t.Errorf("two tokens alike")
	}
}

func TestCACertHash(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, IsCA: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	want := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	got, err := CACertHash(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil || got != "sha256:"+hex.EncodeToString(want[:]) {
		t.Fatalf("%s %v", got, err)
	}
	if _, err := CACertHash([]byte("nope")); err == nil {
		t.Errorf("garbage hashed")
	}
	canon, err := ParseCAHash(strings.ToUpper(got[:7]) + strings.ToUpper(got[7:]))
	if err != nil || canon != got {
		t.Errorf("ParseCAHash: %s %v", canon, err)
	}
	for _, bad := range []string{"", got[7:], "sha1:" + got[7:], got[:70], got + "00", "sha256:" + strings.Repeat("zz", 32)} {
		if _, err := ParseCAHash(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
