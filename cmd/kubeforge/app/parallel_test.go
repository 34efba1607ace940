package app

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
)

// sessions counts the commands running at once over all hosts' transports.
type sessions struct {
	mu         sync.Mutex
	now, most  int
	total      int
	perCommand time.Duration
}

func (s *sessions) Run(ctx context.Context, _ string, _ io.Reader) (ssh.Result, error) {
	s.mu.Lock()
	s.now++
	s.total++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(s.perCommand)
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	return ssh.Result{}, nil
}
func (*sessions) Put(context.Context, io.Reader, string) error { return nil }
func (*sessions) Get(context.Context, string, io.Writer) error { return nil }
func (*sessions) Close() error                                 { return nil }

const fourHosts = `apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: four}
spec:
  hosts:
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - {name: w1, address: 192.0.2.12, roles: [worker]}
    - {name: w2, address: 192.0.2.13, roles: [worker]}
    - {name: w3, address: 192.0.2.14, roles: [worker]}
`

// --parallel is honoured by every action, also the read-only ones that
// used to fix it at 10: with --parallel 1 they talk to one host at a time.
func TestParallelIsHonoured(t *testing.T) {
	file := writeFile(t, "four.yaml", fourHosts)
	state := t.TempDir() // with a PKI: certs-inventory reads the CAs first
	if code, out, errOut := run(t, "certs", "generate", "-f", file, "--state-dir", state); code != 0 {
		t.Fatalf("certs generate: %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		most int
	}{
		{[]string{"status", "-f", file, "--parallel", "1"}, 1},
		{[]string{"certs", "check-expiration", "-f", file, "--parallel", "1"}, 1},
		{[]string{"status", "-f", file, "--parallel", "4"}, 4},
		{[]string{"certs", "check-expiration", "-f", file}, 4},
	} {
		s := &sessions{perCommand: 30 * time.Millisecond}
		var out, errOut bytes.Buffer
		deps := &Deps{IO: IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Global: &GlobalOptions{}, redact: &redactor{}}
		deps.connect = func(_ context.Context, spec *config.Host) (*host.Host, error) { return host.New(spec, s), nil }
		root := NewRootCmd(deps)
		root.SetArgs(append(tc.args, "--state-dir", state))
		root.SetOut(&out)
		root.SetErr(&errOut)
		_ = root.ExecuteContext(context.Background()) // the fake hosts are not healthy: the reports say so
		if s.total < 4 {
			t.Errorf("%v: %d commands in all, want one per host at least\n%s%s", tc.args, s.total, out.String(), errOut.String())
		}
		if s.most != tc.most {
			t.Errorf("%v: %d commands ran at once, want %d", tc.args, s.most, tc.most)
		}
	}
}
