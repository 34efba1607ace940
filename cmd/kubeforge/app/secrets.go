package app

import (
	"fmt"
	"os"

	"golang.org/x/term"
)

// envSecrets resolves the secrets the cluster file names: environment
// variables, and a passphrase asked on the terminal. Every value handed
// out is registered with the redactor, so it never reaches a log.
type envSecrets struct {
	deps *Deps
}

func (s envSecrets) Env(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	if ok {
		s.deps.redact.add(v)
	}
	return v, ok
}

func (s envSecrets) Passphrase(keyPath string) ([]byte, error) {
	f, ok := s.deps.IO.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, fmt.Errorf("key %s is encrypted and there is no terminal to ask its passphrase: set ssh.passphraseEnv", keyPath)
	}
	fmt.Fprintf(s.deps.IO.ErrOut, "Passphrase for %s: ", keyPath)
	pass, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(s.deps.IO.ErrOut)
	if err == nil {
		s.deps.redact.add(string(pass))
	}
	return pass, err
}

func (s envSecrets) AgentSocket() string { return os.Getenv("SSH_AUTH_SOCK") }
