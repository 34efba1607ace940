package host

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/ssh"
)

// Secrets gives the values kubeforge never reads from the cluster file:
// the cmd layer resolves them from the environment or a prompt.
type Secrets interface {
	// Env returns the value of an environment variable named in the
	// cluster file (ssh.passwordEnv, ssh.sudoPasswordEnv...).
	Env(name string) (string, bool)
	// Passphrase asks for the passphrase of an encrypted key.
	Passphrase(keyPath string) ([]byte, error)
	// AgentSocket is $SSH_AUTH_SOCK.
	AgentSocket() string
}

// Connect opens a host: the local machine when spec.Local, else SSH with
// host keys checked against known. It then learns how to become root.
func Connect(ctx context.Context, spec *config.Host, secrets Secrets, known *ssh.KnownHosts, log *slog.Logger) (*Host, error) {
	h := &Host{Spec: spec, Log: log}
	if spec.Local {
		h.t = localTransport{}
	} else {
		cfg, err := sshConfig(spec, secrets, known)
		if err != nil {
			return nil, h.Errorf("%w", err)
		}
		c, err := ssh.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		h.t = sshTransport{c: c}
	}
	var sudoPassword []byte
	if env := spec.SSH.SudoPasswordEnv; env != "" {
		v, ok := secrets.Env(env)
		if !ok {
			h.Close()
			return nil, h.Errorf("ssh.sudoPasswordEnv names %s, which is not set", env)
		}
		sudoPassword = []byte(v)
	}
	if err := h.detectSudo(ctx, spec.SSH.User, sudoPassword); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func sshConfig(spec *config.Host, secrets Secrets, known *ssh.KnownHosts) (ssh.Config, error) {
	s := spec.SSH
	cfg := ssh.Config{
		Host:           spec.Name,
		Addr:           spec.Address,
		Port:           s.Port,
		User:           s.User,
		KeyPath:        s.KeyPath,
		ConnectTimeout: s.ConnectTimeout.Duration,
		KnownHosts:     known,
		AgentSocket:    secrets.AgentSocket(),
		Passphrase:     secrets.Passphrase,
	}
	if s.PassphraseEnv != "" {
		env := s.PassphraseEnv
		cfg.Passphrase = func(string) ([]byte, error) {
			v, ok := secrets.Env(env)
			if !ok {
				return nil, fmt.Errorf("ssh.passphraseEnv names %s, which is not set", env)
			}
			return []byte(v), nil
		}
	}
	if s.PasswordEnv != "" {
		v, ok := secrets.Env(s.PasswordEnv)
		if !ok {
			return cfg, fmt.Errorf("ssh.passwordEnv names %s, which is not set", s.PasswordEnv)
		}
		cfg.Password = v
	}
	if s.Bastion != "" {
		b, err := parseBastion(s.Bastion, s.User)
		if err != nil {
			return cfg, err
		}
		b.KeyPath = s.BastionKeyPath
		if b.KeyPath == "" {
			b.KeyPath = s.KeyPath
		}
		b.Passphrase, b.AgentSocket, b.ConnectTimeout = cfg.Passphrase, cfg.AgentSocket, cfg.ConnectTimeout
		cfg.Bastion = &b
	}
	return cfg, nil
}

// parseBastion reads "user@host:port" (user and port optional).
func parseBastion(s, defaultUser string) (ssh.Config, error) {
	cfg := ssh.Config{User: defaultUser, Port: 22}
	if u, rest, ok := strings.Cut(s, "@"); ok {
		cfg.User, s = u, rest
	}
	cfg.Addr, cfg.Host = s, "bastion "+s
	if h, p, err := net.SplitHostPort(s); err == nil {
		port, err := strconv.Atoi(p)
		if err != nil {
			return cfg, fmt.Errorf("ssh.bastion %q: bad port", s)
		}
		cfg.Addr, cfg.Port = h, port
	}
	if cfg.Addr == "" {
		return cfg, fmt.Errorf("ssh.bastion %q: no host", s)
	}
	return cfg, nil
}
