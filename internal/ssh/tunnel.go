package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"
)

// ErrNotListening is a connection the host could not open: nothing
// accepts connections at that address (yet), as seen from the host.
var ErrNotListening = errors.New("nothing accepts connections there")

// dialError turns sshd's answer to a refused direct-tcpip channel into a
// typed error: ErrNotListening when the host could not connect, and
// errForwardingOff when sshd does not forward at all (AllowTcpForwarding
// no), which Dial answers with a tunnel through a command instead.
func dialError(addr string, err error) error {
	var oce *xssh.OpenChannelError
	if errors.As(err, &oce) {
		switch oce.Reason {
		case xssh.ConnectionFailed:
			return fmt.Errorf("%s: %w (%s)", addr, ErrNotListening, oce.Message)
		case xssh.Prohibited:
			return fmt.Errorf("%s: %w (%s)", addr, errForwardingOff, oce.Message)
		}
	}
	return err
}

var errForwardingOff = errors.New("sshd does not forward TCP connections")

// tunnelAddr is what a tunnel may be opened to: an IPv4 address or a DNS
// name, and a port. It is checked before it reaches the command line.
var tunnelHost = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// tunnelScript connects to $0:$1 on the host and relays the session's
// stdin and stdout to it, after one byte that says the connection is open.
// socat half-closes cleanly; bash's /dev/tcp is the fallback on a host
// without it.
const tunnelScript = `if command -v socat >/dev/null 2>&1; then
  printf K; exec socat - "TCP:$0:$1,connect-timeout=5"
fi
exec 3<>"/dev/tcp/$0/$1" || exit 1
printf K
cat <&3 &
exec cat >&3`

// dialThroughCommand opens addr from the host by running a relay in a
// session: for an sshd that refuses to forward. The session holds one of
// the connection's session slots for the tunnel's life.
func (c *Client) dialThroughCommand(ctx context.Context, addr string) (net.Conn, error) {
	hostPart, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || !tunnelHost.MatchString(hostPart) {
		return nil, fmt.Errorf("cannot tunnel to %q: not an address and port", addr)
	}
	select {
	case c.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := sync.OnceFunc(func() { <-c.sessions })
	session, err := c.client.NewSession()
	if err != nil {
		release()
		return nil, fmt.Errorf("new session: %w", err)
	}
	stdin, err := session.StdinPipe()
	if err != nil {
		session.Close()
		release()
		return nil, err
	}
	stdout, err := session.StdoutPipe()
	if err != nil {
		session.Close()
		release()
		return nil, err
	}
	cmd := "bash -c " + shellQuote(tunnelScript) + " " + shellQuote(hostPart) + " " + port
	if err := session.Start(cmd); err != nil {
		session.Close()
		release()
		return nil, fmt.Errorf("start the tunnel: %w", err)
	}
	ack := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := io.ReadFull(stdout, b)
		if err == nil && b[0] != 'K' {
			err = errors.New("unexpected answer")
		}
		ack <- err
	}()
	select {
	case err = <-ack:
	case <-ctx.Done():
		err = ctx.Err()
	}
	conn := &tunnelConn{session: session, r: stdout, w: stdin, addr: addr, release: release}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: %w (through a tunnel command)", addr, ErrNotListening)
	}
	return conn, nil
}

func shellQuote(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, `'\''`...)
			continue
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// tunnelConn is a relay session as a net.Conn. Deadlines are honoured by
// closing the session when one passes.
type tunnelConn struct {
	session *xssh.Session
	r       io.Reader
	w       io.WriteCloser
	addr    string
	release func()

	mu    sync.Mutex
	timer *time.Timer
	once  sync.Once
}

func (t *tunnelConn) Read(p []byte) (int, error)  { return t.r.Read(p) }
func (t *tunnelConn) Write(p []byte) (int, error) { return t.w.Write(p) }
func (t *tunnelConn) Close() error {
	t.once.Do(func() {
		t.w.Close()
		t.session.Close()
		t.release()
	})
	return nil
}
func (t *tunnelConn) LocalAddr() net.Addr  { return tunnelAddr("kubeforge") }
func (t *tunnelConn) RemoteAddr() net.Addr { return tunnelAddr(t.addr) }
func (t *tunnelConn) SetDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	if !d.IsZero() {
		t.timer = time.AfterFunc(time.Until(d), func() { t.Close() })
	}
	return nil
}
func (t *tunnelConn) SetReadDeadline(d time.Time) error  { return t.SetDeadline(d) }
func (t *tunnelConn) SetWriteDeadline(d time.Time) error { return t.SetDeadline(d) }

type tunnelAddr string

func (a tunnelAddr) Network() string { return "ssh-tunnel" }
func (a tunnelAddr) String() string  { return string(a) }
