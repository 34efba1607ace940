package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-multierror"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
	"github.com/kubeforge/kubeforge/playbooks"
)

// rootTransport answers every command as root with success.
type rootTransport struct{}

func (rootTransport) Run(_ context.Context, cmd string, _ io.Reader) (ssh.Result, error) {
	return ssh.Result{Stdout: []byte("0\n")}, nil
}
func (rootTransport) Put(context.Context, io.Reader, string) error { return nil }
func (rootTransport) Get(context.Context, string, io.Writer) error { return nil }
func (rootTransport) Close() error                                 { return nil }

// recorder is a fake phase.
type recorder struct {
	name     string
	mu       *sync.Mutex
	ran      *[]string
	failOn   string
	readOnly bool
	plan     []string
}

func (r recorder) Title() string  { return "Do " + r.name }
func (r recorder) ReadOnly() bool { return r.readOnly }
func (r recorder) Run(_ context.Context, h *host.Host) error {
	r.mu.Lock()
	*r.ran = append(*r.ran, r.name+"@"+h.Name())
	r.mu.Unlock()
	if h.Name() == r.failOn {
		return errors.New("boom")
	}
	return nil
}
func (r recorder) Plan(_ context.Context, h *host.Host) ([]string, error) { return r.plan, nil }

func cluster() *config.Cluster {
	return &config.Cluster{Spec: config.Spec{Hosts: []config.Host{
		{Name: "cp1", Address: "192.0.2.1", Roles: []config.Role{config.RoleControlPlane, config.RoleEtcd}},
		{Name: "w1", Address: "192.0.2.2", Roles: []config.Role{config.RoleWorker}},
		{Name: "w2", Address: "192.0.2.3", Roles: []config.Role{config.RoleWorker}},
	}}}
}

type fixture struct {
	runner *Runner
	out    *bytes.Buffer
	ran    []string
	mu     sync.Mutex
}

func newFixture(failConnect string, phases map[string]recorder) *fixture {
	f := &fixture{out: &bytes.Buffer{}}
	pool := NewPool(func(_ context.Context, spec *config.Host) (*host.Host, error) {
		if spec.Name == failConnect {
			return nil, &ssh.ConnectError{Host: spec.Name, Addr: spec.Address + ":22", Err: errors.New("connection refused")}
		}
		return host.New(spec, rootTransport{}), nil
	})
	f.runner = &Runner{
		Env:  &Env{Cluster: cluster()},
		Pool: pool,
		Out:  f.out,
		Log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewPhase: func(name string, _ *Env) (Phase, error) {
			p, ok := phases[name]
			if !ok {
				return nil, fmt.Errorf("no phase %q", name)
			}
			p.name, p.mu, p.ran = name, &f.mu, &f.ran
			return p, nil
		},
	}
	return f
}

func playbook(steps ...playbooks.Step) *playbooks.Playbook {
	return &playbooks.Playbook{Name: "test", Steps: steps}
}

func TestRunsEveryStepOnItsHosts(t *testing.T) {
	f := newFixture("", map[string]recorder{"a": {}, "b": {}})
	_, err := f.runner.Run(context.Background(), playbook(
		playbooks.Step{Phase: "a", Hosts: playbooks.All},
		playbooks.Step{Phase: "b", Hosts: playbooks.Workers, Serial: true},
	))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.ran)
	if strings.Join(f.ran, ",") != "a@cp1,a@w1,a@w2,b@w1,b@w2" {
		t.Fatalf("ran %v", f.ran)
	}
	for _, want := range []string{"[a] Do a on 3 host(s)", "[a] cp1 (192.0.2.1)", " ok ", "[b] w2 (192.0.2.3)", "test: done in"} {
		if !strings.Contains(f.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, f.out)
		}
	}
}

func TestOneHostDownOthersFinishAndTheErrorNamesIt(t *testing.T) {
	f := newFixture("w1", map[string]recorder{"a": {}, "b": {}})
	_, err := f.runner.Run(context.Background(), playbook(
		playbooks.Step{Phase: "a", Hosts: playbooks.All},
		playbooks.Step{Phase: "b", Hosts: playbooks.All},
	))
	var se *StepError
	if !errors.As(err, &se) || se.Phase != "a" || se.Failed != 1 || se.Of != 3 {
		t.Fatalf("error %v", err)
	}
	var me *multierror.Error
	var ce *ssh.ConnectError
	if !errors.As(err, &me) || len(me.Errors) != 1 || !errors.As(err, &ce) || ce.Host != "w1" {
		t.Fatalf("per-host errors lost: %#v", err)
	}
	if !strings.Contains(err.Error(), "host w1 (192.0.2.2:22): connection refused") {
		t.Errorf("message: %v", err)
	}
	slices.Sort(f.ran)
	if strings.Join(f.ran, ",") != "a@cp1,a@w2" {
		t.Fatalf("the others must finish step a, and step b must not start: %v", f.ran)
	}
	if !strings.Contains(f.out.String(), "[a] w1 (192.0.2.2)") || !strings.Contains(f.out.String(), "FAILED") {
		t.Errorf("output:\n%s", f.out)
	}
}

func TestSerialStopsAtFirstFailure(t *testing.T) {
	f := newFixture("", map[string]recorder{"roll": {failOn: "cp1"}})
	_, err := f.runner.Run(context.Background(), playbook(playbooks.Step{Phase: "roll", Hosts: playbooks.All, Serial: true}))
	if err == nil || strings.Join(f.ran, ",") != "roll@cp1" {
		t.Fatalf("ran %v, err %v", f.ran, err)
	}
}

func TestSkipOnlyAndDryRun(t *testing.T) {
	phases := map[string]recorder{"facts": {readOnly: true}, "write": {plan: []string{"write /etc/x"}}, "other": {}}
	pb := playbook(
		playbooks.Step{Phase: "facts", Hosts: playbooks.All},
		playbooks.Step{Phase: "write", Hosts: playbooks.ControlPlane},
		playbooks.Step{Phase: "other", Hosts: playbooks.ControlPlane},
	)

	f := newFixture("", phases)
	f.runner.Skip = []string{"write"}
	if _, err := f.runner.Run(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(f.ran, "write@cp1") || !strings.Contains(f.out.String(), "[write] skipped: --skip-phases") {
		t.Fatalf("skip: %v\n%s", f.ran, f.out)
	}

	f = newFixture("", phases)
	f.runner.Only = "other"
	if _, err := f.runner.Run(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.ran)
	if strings.Join(f.ran, ",") != "facts@cp1,facts@w1,facts@w2,other@cp1" {
		t.Fatalf("only: %v", f.ran)
	}

	f = newFixture("", phases)
	f.runner.DryRun = true
	if _, err := f.runner.Run(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(f.ran, "write@cp1") || slices.Contains(f.ran, "other@cp1") || !slices.Contains(f.ran, "facts@w1") {
		t.Fatalf("dry run changed something: %v", f.ran)
	}
	if !strings.Contains(f.out.String(), "would change:") || !strings.Contains(f.out.String(), "- write /etc/x") {
		t.Errorf("dry run output:\n%s", f.out)
	}

	f = newFixture("", phases)
	f.runner.Skip = []string{"nope"}
	if _, err := f.runner.Run(context.Background(), pb); err == nil || !strings.Contains(err.Error(), "no phase \"nope\"") {
		t.Fatalf("unknown skip: %v", err)
	}
}

// TestPlaybooksUseKnownPhases ties the embedded playbooks to the phases.
func TestPlaybooksUseKnownPhases(t *testing.T) {
	for _, name := range playbooks.Names() {
		pb, err := playbooks.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range pb.Steps {
			if _, err := New(s.Phase, &Env{}); err != nil {
				t.Errorf("playbook %s: %v", name, err)
			}
		}
	}
}
