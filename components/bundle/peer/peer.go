// Package peer hands a bundle archive from a host that keeps it (a
// control plane) to a host joining the cluster, over one TCP connection
// on the cluster network: the archive then crosses the admin machine's
// link once per cluster, not once per node, and the joining host reads
// it without an SSH session's decryption.
//
// The connection proves nothing about the bytes: the receiver checks the
// archive's sha256 and every file's, which the admin machine gives it
// over SSH, as for an archive streamed by the admin machine itself. The
// bundle holds public binaries and images, no secret; a one-time token,
// also given over SSH, keeps the server to the host it was started for.
// It depends on the standard library only, for kube-unpack.
package peer

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// greeting starts a client's request; the token's hex follows, then a
// newline.
const greeting = "kubeforge-bundle/1 "

// tokenHex is a token's length in hex digits.
const tokenHex = 64

// requestLen is the length of a client's request.
const requestLen = len(greeting) + tokenHex + 1

// requestTimeout bounds how long a connection may take to present its
// token.
const requestTimeout = 10 * time.Second

// NewToken returns a random one-time token.
func NewToken() (string, error) {
	b := make([]byte, tokenHex/2)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ReadToken reads a token, the first line of r, and checks its form.
func ReadToken(r io.Reader) (string, error) {
	b := make([]byte, tokenHex+1)
	n, err := io.ReadFull(r, b)
	if err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && n == tokenHex) {
		return "", fmt.Errorf("read the token: %d bytes: want %d hex digits and a newline", n, tokenHex)
	}
	tok := strings.TrimSuffix(string(b[:n]), "\n")
	if !validToken(tok) {
		return "", errors.New("the token is not 64 lowercase hex digits")
	}
	return tok, nil
}

func validToken(tok string) bool {
	return len(tok) == tokenHex && strings.Trim(tok, "0123456789abcdef") == ""
}

// Server sends one archive to the connections that present its token.
type Server struct {
	// Archive is the file sent.
	Archive string
	Token   string
	// Clients is how many transfers it makes before it stops (at least 1).
	Clients int
	// Lifetime bounds the whole: accepting and sending.
	Lifetime time.Duration
}

// Serve accepts on ln until Clients transfers completed or Lifetime
// passed, and closes ln. A connection without the token is closed
// unanswered. It returns nil once Clients transfers completed, an error
// wrapping os.ErrDeadlineExceeded when the lifetime ended first.
func (s *Server) Serve(ln net.Listener) error {
	if !validToken(s.Token) {
		return errors.New("serve: the token is not 64 lowercase hex digits")
	}
	if _, err := os.Stat(s.Archive); err != nil {
		ln.Close()
		return err
	}
	clients := max(s.Clients, 1)
	deadline := time.Now().Add(s.Lifetime)
	if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
		if err := d.SetDeadline(deadline); err != nil {
			ln.Close()
			return err
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
		once sync.Once
	)
	for {
		c, err := ln.Accept()
		if err != nil {
			once.Do(func() { ln.Close() })
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if done >= clients {
				return nil
			}
			return fmt.Errorf("serve: %d of %d transfers made: %w", done, clients, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.serveOne(c, deadline) != nil {
				return
			}
			mu.Lock()
			done++
			last := done == clients
			mu.Unlock()
			if last {
				once.Do(func() { ln.Close() })
			}
		}()
	}
}

// serveOne reads the request and sends the archive.
func (s *Server) serveOne(c net.Conn, deadline time.Time) error {
	defer c.Close()
	rd := time.Now().Add(requestTimeout)
	if deadline.Before(rd) {
		rd = deadline
	}
	if err := c.SetReadDeadline(rd); err != nil {
		return err
	}
	req := make([]byte, requestLen)
	if _, err := io.ReadFull(c, req); err != nil {
		return fmt.Errorf("read the request: %w", err)
	}
	want := greeting + s.Token + "\n"
	if subtle.ConstantTimeCompare(req, []byte(want)) != 1 {
		return errors.New("refused: not the token of this transfer")
	}
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	f, err := os.Open(s.Archive)
	if err != nil {
		return err
	}
	defer f.Close()
	// *os.File to a TCP connection: sendfile, no copy through this process.
	if _, err := io.Copy(c, f); err != nil {
		return fmt.Errorf("send the archive: %w", err)
	}
	return nil
}

// Fetch connects to the server at addr (host:port), presents the token
// and returns the archive's stream; connecting gives up after timeout.
// Closing the stream ends the connection.
func Fetch(ctx context.Context, addr, token string, timeout time.Duration) (io.ReadCloser, error) {
	if !validToken(token) {
		return nil, errors.New("fetch: the token is not 64 lowercase hex digits")
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the bundle's server %s: %w", addr, err)
	}
	if _, err := io.WriteString(c, greeting+token+"\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("bundle server %s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite() // nothing more to say
	}
	return c, nil
}
