package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/pkg/sftp"
	xssh "golang.org/x/crypto/ssh"
)

// testServer is a small in-process SSH server: password and public-key
// login, exec through /bin/sh, the sftp subsystem, and direct-tcpip
// forwarding (so it can be a bastion).
type testServer struct {
	t        *testing.T
	addr     string
	hostKey  xssh.Signer
	password string
	userKey  xssh.PublicKey
	noSFTP   bool
	// maxSessions, when set, refuses more open sessions per connection,
	// as sshd's MaxSessions does.
	maxSessions int
	listener    net.Listener
	wg          sync.WaitGroup
}

func newHostKey(t *testing.T) xssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := xssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startServer(t *testing.T, s *testServer) *testServer {
	t.Helper()
	if !startOn(t, s, "127.0.0.1:0") {
		t.Fatal("cannot listen")
	}
	return s
}

// startOn starts s on addr; false when the address is busy.
func startOn(t *testing.T, s *testServer, addr string) bool {
	t.Helper()
	s.t = t
	if s.hostKey == nil {
		s.hostKey = newHostKey(t)
	}
	cfg := &xssh.ServerConfig{
		PasswordCallback: func(_ xssh.ConnMetadata, pw []byte) (*xssh.Permissions, error) {
			if s.password != "" && string(pw) == s.password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
		PublicKeyCallback: func(_ xssh.ConnMetadata, key xssh.PublicKey) (*xssh.Permissions, error) {
			if s.userKey != nil && string(key.Marshal()) == string(s.userKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(s.hostKey)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	s.listener, s.addr = l, l.Addr().String()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(conn, cfg)
		}
	}()
	t.Cleanup(func() { l.Close() })
	return true
}

func (s *testServer) hostPort() (string, int) {
	h, p, _ := net.SplitHostPort(s.addr)
	port, _ := strconv.Atoi(p)
	return h, port
}

func (s *testServer) serve(conn net.Conn, cfg *xssh.ServerConfig) {
	_, chans, reqs, err := xssh.NewServerConn(conn, cfg)
	if err != nil {
		conn.Close()
		return
	}
	go xssh.DiscardRequests(reqs)
	var open atomic.Int32
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			if s.maxSessions > 0 && int(open.Load()) >= s.maxSessions {
				nc.Reject(xssh.ConnectionFailed, "open failed")
				continue
			}
			ch, reqs, err := nc.Accept()
			if err != nil {
				continue
			}
			open.Add(1)
			go func() {
				defer open.Add(-1)
				s.session(ch, reqs)
			}()
		case "direct-tcpip":
			var p struct {
				Host       string
				Port       uint32
				OriginHost string
				OriginPort uint32
			}
			if err := xssh.Unmarshal(nc.ExtraData(), &p); err != nil {
				nc.Reject(xssh.ConnectionFailed, err.Error())
				continue
			}
			target, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
			if err != nil {
				nc.Reject(xssh.ConnectionFailed, err.Error())
				continue
			}
			ch, reqs, err := nc.Accept()
			if err != nil {
				target.Close()
				continue
			}
			go xssh.DiscardRequests(reqs)
			go func() { io.Copy(ch, target); ch.Close() }()
			go func() { io.Copy(target, ch); target.Close() }()
		default:
			nc.Reject(xssh.UnknownChannelType, "no")
		}
	}
}

func (s *testServer) session(ch xssh.Channel, reqs <-chan *xssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			xssh.Unmarshal(req.Payload, &p)
			req.Reply(true, nil)
			cmd := exec.Command("/bin/sh", "-c", p.Command)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			// A signal request kills the process.
			go func() {
				for r := range reqs {
					if r.Type == "signal" && cmd.Process != nil {
						cmd.Process.Kill()
					}
					if r.WantReply {
						r.Reply(false, nil)
					}
				}
			}()
			code := 0
			if err := cmd.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
						code = 137
					} else {
						code = exit.ExitCode()
					}
				} else {
					code = 127
				}
			}
			status := make([]byte, 4)
			binary.BigEndian.PutUint32(status, uint32(code))
			ch.SendRequest("exit-status", false, status)
			return
		case "subsystem":
			var p struct{ Name string }
			xssh.Unmarshal(req.Payload, &p)
			if p.Name != "sftp" || s.noSFTP {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			srv, err := sftp.NewServer(ch)
			if err != nil {
				return
			}
			srv.Serve()
			return
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}
