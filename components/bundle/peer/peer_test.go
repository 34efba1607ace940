package peer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, s *Server) (addr string, done chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	return ln.Addr().String(), done
}

func archive(t *testing.T) (string, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte("kubeforge bundle "), 100000)
	p := filepath.Join(t.TempDir(), "a.tar.zst")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// A connection with the wrong token gets nothing and does not count; the
// right one gets the archive whole, and the server stops after it.
func TestServeFetch(t *testing.T) {
	p, data := archive(t)
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewToken()
	addr, done := serve(t, &Server{Archive: p, Token: tok, Clients: 1, Lifetime: time.Minute})

	r, err := Fetch(context.Background(), addr, other, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if len(got) != 0 {
		t.Fatalf("a wrong token got %d bytes", len(got))
	}

	r, err = Fetch(context.Background(), addr, tok, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes (%v), want the archive's %d", len(got), err, len(data))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after its one transfer: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop after its one transfer")
	}
	if _, err := Fetch(context.Background(), addr, tok, time.Second); err == nil {
		t.Error("the server still accepts after its transfers")
	}
}

// Nobody comes: Serve ends at its lifetime, and says so.
func TestServeLifetime(t *testing.T) {
	p, _ := archive(t)
	tok, _ := NewToken()
	_, done := serve(t, &Server{Archive: p, Token: tok, Clients: 2, Lifetime: 200 * time.Millisecond})
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "0 of 2 transfers") {
			t.Fatalf("Serve at its lifetime: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve outlived its lifetime")
	}
}

func TestServeRefusesAMissingArchive(t *testing.T) {
	tok, _ := NewToken()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = (&Server{Archive: filepath.Join(t.TempDir(), "none"), Token: tok, Lifetime: time.Minute}).Serve(ln)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Serve of a missing archive: %v", err)
	}
}

func TestReadToken(t *testing.T) {
	tok, _ := NewToken()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{tok + "\n", true},
		{tok, true},
		{tok[:63] + "\n", false},
		{strings.ToUpper(tok) + "\n", false},
		{"", false},
	} {
		got, err := ReadToken(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || (tc.ok && got != tok) {
			t.Errorf("ReadToken(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestFetchUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tok, _ := NewToken()
	if _, err := Fetch(context.Background(), addr, tok, time.Second); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("Fetch of a closed port: %v", err)
	}
}
