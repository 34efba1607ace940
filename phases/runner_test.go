package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	waits    bool // a read-only phase that waits for the others (ready)
	plan     []string
}

func (r recorder) Waits() bool { return r.waits }

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

func testRunnerCluster() *config.Cluster {
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
		Env:  &Env{Cluster: testRunnerCluster()},
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
	phases := map[string]recorder{"facts": {readOnly: true}, "write": {plan: []string{"write /etc/x"}}, "other": {},
		"ready": {readOnly: true, waits: true}}
	pb := playbook(
		playbooks.Step{Phase: "facts", Hosts: playbooks.All},
		playbooks.Step{Phase: "write", Hosts: playbooks.ControlPlane},
		playbooks.Step{Phase: "other", Hosts: playbooks.ControlPlane},
		playbooks.Step{Phase: "ready", Hosts: playbooks.ControlPlane},
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
	// The read-only facts it needs, not the wait for what it did not do.
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

// gated is a fake phase that waits on wait (when set) and closes, once
// every host ran it, closed.
type gated struct {
	title  string
	wait   chan struct{}
	mu     sync.Mutex
	left   int
	closed chan struct{}
	fail   bool
}

func (g *gated) Title() string { return g.title }
func (g *gated) Run(ctx context.Context, h *host.Host) error {
	if g.wait != nil {
		select {
		case <-g.wait:
		case <-time.After(5 * time.Second):
			return errors.New("waited 5s: the steps did not run at the same time")
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.left--; g.left == 0 && g.closed != nil {
		close(g.closed)
	}
	if g.fail {
		return errors.New("boom")
	}
	return nil
}

func TestIndependentStepsOverlapAndPrintInOrder(t *testing.T) {
	for _, fail := range []bool{false, true} {
		f := newFixture("", nil)
		fastDone := make(chan struct{})
		steps := map[string]Phase{
			"a":    &gated{title: "A", left: 3},
			"slow": &gated{title: "Slow", left: 3, wait: fastDone}, // runs only once fast is done
			"fast": &gated{title: "Fast", left: 3, closed: fastDone, fail: fail},
			"join": &gated{title: "Join", left: 3},
		}
		f.runner.NewPhase = func(name string, _ *Env) (Phase, error) { return steps[name], nil }
		_, err := f.runner.Run(context.Background(), playbook(
			playbooks.Step{Phase: "a", Hosts: playbooks.All},
			playbooks.Step{Phase: "slow", Hosts: playbooks.All, After: []string{"a"}},
			playbooks.Step{Phase: "fast", Hosts: playbooks.All, After: []string{"a"}},
			playbooks.Step{Phase: "join", Hosts: playbooks.All, After: []string{"slow", "fast"}},
		))
		out := f.out.String()
		if !fail {
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// In the playbook's order, whatever order they finished in.
			var order []string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "[") {
					order = append(order, l[1:strings.Index(l, "]")])
				}
			}
			want := "a a a a slow slow slow slow fast fast fast fast join join join join"
			if got := strings.Join(order, " "); got != want {
				t.Errorf("output order\n%s\nwant\n%s\n%s", got, want, out)
			}
			if !regexp.MustCompile(`(?m)^test: critical path a \S+ > (slow|fast) \S+ > join \S+$`).MatchString(out) {
				t.Errorf("critical path:\n%s", out)
			}
			continue
		}
		var se *StepError
		if !errors.As(err, &se) || se.Phase != "fast" {
			t.Fatalf("error %v", err)
		}
		if strings.Contains(out, "[join]") {
			t.Errorf("join ran after fast failed:\n%s", out)
		}
		if strings.Count(out, "[slow] ") != 4 || strings.Contains(out, "[slow] w2 (192.0.2.3)               FAILED") {
			t.Errorf("slow, already running, did not finish:\n%s", out)
		}
	}
}

func TestCriticalPath(t *testing.T) {
	pb := playbook(
		playbooks.Step{Phase: "a"},
		playbooks.Step{Phase: "packages", After: []string{"a"}},
		playbooks.Step{Phase: "bundle", After: []string{"a"}},
		playbooks.Step{Phase: "off", After: []string{"bundle"}}, // skipped: passes its wait on
		playbooks.Step{Phase: "runtime", After: []string{"packages", "off"}},
		playbooks.Step{Phase: "addons", After: []string{"a"}},
	)
	t0 := time.Unix(0, 0)
	at := func(from, to int) stepResult {
		return stepResult{ran: true, start: t0.Add(time.Duration(from) * time.Second), end: t0.Add(time.Duration(to) * time.Second),
			timing: StepTiming{Duration: time.Duration(to-from) * time.Second}}
	}
	results := []stepResult{at(0, 1), at(1, 4), at(1, 6), {ran: true, skipped: true}, at(6, 8), at(1, 7)}
	got := strings.Join(criticalPath(pb, pb.Deps(), results), " > ")
	if want := "a 1s > bundle 5s > runtime 2s"; got != want {
		t.Errorf("critical path %q, want %q", got, want)
	}
}

// noting is gated, and prints a note of its own through its Env's Out.
type noting struct {
	*gated
	env *Env
}

func (n noting) Run(ctx context.Context, h *host.Host) error {
	fmt.Fprintf(n.env.Out, "[fast] %s: a note (this run plays %s)\n", h.Name(), strings.Join(n.env.Phases, ","))
	return n.gated.Run(ctx, h)
}

// TestPhaseOutputKeepsStepOrder: what a phase prints itself goes through
// its step's writer, so it stays in the playbook's order even when the
// step runs (and prints) before the one above it finished; and a phase
// knows which phases the run plays.
func TestPhaseOutputKeepsStepOrder(t *testing.T) {
	f := newFixture("", nil)
	fastDone := make(chan struct{})
	f.runner.Skip = []string{"extra"}
	f.runner.NewPhase = func(name string, env *Env) (Phase, error) {
		switch name {
		case "slow":
			return &gated{title: "Slow", left: 3, wait: fastDone}, nil
		case "fast":
			return noting{&gated{title: "Fast", left: 3, closed: fastDone}, env}, nil
		}
		return &gated{title: name, left: 3}, nil
	}
	_, err := f.runner.Run(context.Background(), playbook(
		playbooks.Step{Phase: "slow", Hosts: playbooks.All},
		playbooks.Step{Phase: "fast", Hosts: playbooks.All, After: []string{}},
		playbooks.Step{Phase: "extra", Hosts: playbooks.All},
	))
	out := f.out.String()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lastSlow, firstNote := strings.LastIndex(out, "[slow]"), strings.Index(out, "a note")
	if lastSlow < 0 || firstNote < lastSlow {
		t.Errorf("the fast step's note came before the slow step's lines:\n%s", out)
	}
	if !strings.Contains(out, "(this run plays slow,fast)") {
		t.Errorf("Env.Phases is not the phases this run plays (extra is skipped):\n%s", out)
	}
}
