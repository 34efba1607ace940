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
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/playbooks"
)

// Runner plays a playbook: for each step, it selects the hosts, runs the
// phase on them (in parallel up to Concurrency, or one by one), prints a
// line per host with its duration, collects the per-host errors and stops
// after a step that failed.
type Runner struct {
	Env         *Env
	Pool        *Pool
	Concurrency int
	DryRun      bool
	// Skip lists phases not to run (--skip-phases).
	Skip []string
	// Only runs just this phase (`kubeforge <action> phase <name>`).
	Only string
	// Targets narrows the run to these hosts (join --host); steps marked
	// cluster still run on their whole selection.
	Targets []string
	// AdminLabel names where admin steps run in progress lines ("admin
	// machine" when empty; "this machine" for a join run on the node).
	AdminLabel string
	Out        io.Writer
	Log        *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
	// NewPhase builds phases by name; New when nil (tests pass fakes).
	NewPhase func(name string, env *Env) (Phase, error)
}

// StepError is a step that failed on some hosts; Err aggregates the
// per-host errors (a *multierror.Error), each naming its host.
type StepError struct {
	Phase  string
	Failed int
	Of     int
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("phase %s failed on %d of %d hosts:\n%s", e.Phase, e.Failed, e.Of, indent(e.Err))
}
func (e *StepError) Unwrap() error { return e.Err }

func indent(err error) string {
	var me *multierror.Error
	if !errors.As(err, &me) {
		return "  " + err.Error()
	}
	lines := make([]string, len(me.Errors))
	for i, e := range me.Errors {
		lines[i] = "  - " + strings.ReplaceAll(e.Error(), "\n", "\n    ")
	}
	return strings.Join(lines, "\n")
}

// StepTiming is one line of the final summary.
type StepTiming struct {
	Phase    string
	Hosts    int
	Duration time.Duration
	Skipped  string
}

// stepResult is what one step of a run came to.
type stepResult struct {
	ran        bool // false: not started (a step it waits for failed, or one did)
	timing     StepTiming
	err        error
	skipped    bool
	start, end time.Time
}

// Run plays pb. Each step starts once the steps it waits for are done
// (playbooks.Step.After; by default the one before it), so independent
// steps run at the same time. Output stays in the playbook's order: a
// step prints live while every step before it is done, and is held back
// until then otherwise. After a step fails, no new step starts; the ones
// already running finish.
func (r *Runner) Run(ctx context.Context, pb *playbooks.Playbook) ([]StepTiming, error) {
	if r.Only != "" && !slices.Contains(pb.Phases(), r.Only) {
		return nil, fmt.Errorf("%s has no phase %q (phases: %s)", pb.Name, r.Only, strings.Join(pb.Phases(), ", "))
	}
	for _, s := range r.Skip {
		if !slices.Contains(pb.Phases(), s) {
			return nil, fmt.Errorf("--skip-phases: %s has no phase %q (phases: %s)", pb.Name, s, strings.Join(pb.Phases(), ", "))
		}
	}
	now := r.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	newPhase := r.NewPhase
	if newPhase == nil {
		newPhase = New
	}
	out := newOrderedOut(r.Out, len(pb.Steps))
	// The phases this run plays: --skip-phases and `phase NAME` left out.
	var playing []string
	for _, name := range pb.Phases() {
		if (r.Only == "" || name == r.Only) && !slices.Contains(r.Skip, name) {
			playing = append(playing, name)
		}
	}
	// Build every phase first: a playbook naming an unknown phase fails
	// before anything runs. Each phase gets the Env with its step's
	// writer as Out, so what it prints (a warning, a certificate made)
	// keeps the playbook's order too.
	phases := make([]Phase, len(pb.Steps))
	for i, step := range pb.Steps {
		env := *r.Env
		env.Out, env.Phases, env.Targets = out.step(i), playing, r.Targets
		p, err := newPhase(step.Phase, &env)
		if err != nil {
			return nil, fmt.Errorf("playbook %s: %w", pb.Name, err)
		}
		phases[i] = p
	}
	var (
		deps    = pb.Deps()
		done    = make([]chan struct{}, len(pb.Steps))
		results = make([]stepResult, len(pb.Steps))
		failed  atomic.Bool
		wg      sync.WaitGroup
	)
	for i := range done {
		done[i] = make(chan struct{})
	}
	for i, step := range pb.Steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			defer out.finish(i)
			for _, d := range deps[i] {
				<-done[d]
				if !results[d].ran {
					return
				}
			}
			if failed.Load() || ctx.Err() != nil {
				return
			}
			res := &results[i]
			res.ran = true
			w := out.step(i)
			phase := phases[i]
			hosts := step.Select(r.Env.Cluster, r.Targets)
			if skip := r.skipReason(step, phase, hosts); skip != "" {
				if r.Only == "" || step.Phase == r.Only {
					fmt.Fprintf(w, "[%s] skipped: %s\n", step.Phase, skip)
				}
				res.timing, res.skipped = StepTiming{Phase: step.Phase, Skipped: skip}, true
				return
			}
			stepStart := now()
			if step.Hosts == playbooks.Admin {
				res.err = r.runAdmin(ctx, w, step, phase)
			} else {
				res.err = r.runStep(ctx, w, step, phase, hosts)
			}
			res.start, res.end = stepStart, now()
			res.timing = StepTiming{Phase: step.Phase, Hosts: len(hosts), Duration: res.end.Sub(stepStart)}
			if res.err != nil {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	var timings []StepTiming
	var firstErr error
	for _, res := range results {
		if !res.ran {
			continue
		}
		timings = append(timings, res.timing)
		if res.err != nil && firstErr == nil {
			firstErr = res.err
		}
	}
	if firstErr != nil {
		return timings, firstErr
	}
	if err := ctx.Err(); err != nil {
		return timings, err
	}
	var parts []string
	for _, t := range timings {
		if t.Skipped == "" {
			parts = append(parts, fmt.Sprintf("%s %s", t.Phase, t.Duration.Round(10*time.Millisecond)))
		}
	}
	fmt.Fprintf(r.Out, "%s: done in %s (%s)\n", pb.Name, now().Sub(start).Round(10*time.Millisecond), strings.Join(parts, ", "))
	if path := criticalPath(pb, deps, results); len(path) > 1 {
		fmt.Fprintf(r.Out, "%s: critical path %s\n", pb.Name, strings.Join(path, " > "))
	}
	return timings, nil
}

// criticalPath is the chain of steps that decided the run's length: from
// the step that ended last, back through the step it waited for that
// ended last, each with its duration.
func criticalPath(pb *playbooks.Playbook, deps [][]int, results []stepResult) []string {
	last := -1
	for i, r := range results {
		if r.ran && !r.skipped && (last < 0 || r.end.After(results[last].end)) {
			last = i
		}
	}
	var path []string
	for i := last; i >= 0; {
		path = append(path, fmt.Sprintf("%s %s", pb.Steps[i].Phase, results[i].timing.Duration.Round(10*time.Millisecond)))
		next := -1
		var pending []int
		pending = append(pending, deps[i]...)
		for len(pending) > 0 { // skipped steps pass their waits on
			d := pending[0]
			pending = pending[1:]
			if results[d].skipped {
				pending = append(pending, deps[d]...)
				continue
			}
			if results[d].ran && (next < 0 || results[d].end.After(results[next].end)) {
				next = d
			}
		}
		i = next
	}
	slices.Reverse(path)
	return path
}

// skipReason says why a step does not run, or "".
func (r *Runner) skipReason(step playbooks.Step, phase Phase, hosts []*config.Host) string {
	switch {
	case r.Only != "" && step.Phase != r.Only && (!isReadOnly(phase) || waits(phase)):
		return "not selected"
	case slices.Contains(r.Skip, step.Phase):
		return "--skip-phases"
	case len(hosts) == 0 && step.Hosts != playbooks.Admin:
		skip := "no " + string(step.Hosts) + " hosts"
		if len(r.Targets) > 0 {
			skip += " among " + strings.Join(r.Targets, ", ")
		}
		return skip
	}
	if e, ok := phase.(Enabler); ok {
		if on, why := e.Enabled(); !on {
			return why
		}
	}
	return ""
}

// orderedOut keeps the output of steps that run at the same time in the
// playbook's order: the first step not yet done (the head) writes
// through; the others are buffered until they become the head.
type orderedOut struct {
	mu   sync.Mutex
	w    io.Writer
	head int
	bufs []bytes.Buffer
	done []bool
}

func newOrderedOut(w io.Writer, n int) *orderedOut {
	return &orderedOut{w: w, bufs: make([]bytes.Buffer, n), done: make([]bool, n)}
}

type stepWriter struct {
	o *orderedOut
	i int
}

func (s stepWriter) Write(p []byte) (int, error) {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if s.i == s.o.head {
		return s.o.w.Write(p)
	}
	return s.o.bufs[s.i].Write(p)
}

func (o *orderedOut) step(i int) io.Writer { return stepWriter{o, i} }

// finish marks step i done and lets the next ones through.
func (o *orderedOut) finish(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done[i] = true
	for o.head < len(o.done) && o.done[o.head] {
		o.head++
		if o.head < len(o.done) {
			o.w.Write(o.bufs[o.head].Bytes()) //nolint:errcheck // progress output
			o.bufs[o.head].Reset()
		}
	}
}

func waits(p Phase) bool {
	w, ok := p.(Waiter)
	return ok && w.Waits()
}

func isReadOnly(p Phase) bool {
	ro, ok := p.(ReadOnly)
	return ok && ro.ReadOnly()
}

// runAdmin runs a step whose work is on the admin machine: its Prepare.
func (r *Runner) runAdmin(ctx context.Context, w io.Writer, step playbooks.Step, phase Phase) error {
	title := phase.Title()
	if r.DryRun && !isReadOnly(phase) {
		title += " (dry run)"
	}
	fmt.Fprintf(w, "[%s] %s\n", step.Phase, title)
	adminMachine := r.AdminLabel
	if adminMachine == "" {
		adminMachine = "admin machine"
	}
	t0 := time.Now()
	if p, ok := phase.(Preparer); ok {
		if err := p.Prepare(ctx); err != nil {
			fmt.Fprintf(w, "[%s] %-28s FAILED after %s: %v\n", step.Phase, adminMachine, time.Since(t0).Round(10*time.Millisecond), err)
			return &StepError{Phase: step.Phase, Failed: 1, Of: 1, Err: multierror.Append(nil, err)}
		}
	}
	d := time.Since(t0).Round(10 * time.Millisecond)
	fmt.Fprintf(w, "[%s] %-28s ok %s\n", step.Phase, adminMachine, d)
	r.Log.Info("phase done", "phase", step.Phase, "host", adminMachine, "duration", d)
	return nil
}

func (r *Runner) runStep(ctx context.Context, w io.Writer, step playbooks.Step, phase Phase, hosts []*config.Host) error {
	title := phase.Title()
	if r.DryRun && !isReadOnly(phase) {
		title += " (dry run)"
	}
	fmt.Fprintf(w, "[%s] %s on %d host(s)\n", step.Phase, title, len(hosts))
	if p, ok := phase.(Preparer); ok {
		if err := p.Prepare(ctx); err != nil {
			return &StepError{Phase: step.Phase, Failed: len(hosts), Of: len(hosts), Err: multierror.Append(nil, err)}
		}
	}
	limit := r.Concurrency
	if limit < 1 {
		limit = 10
	}
	if step.Serial {
		limit = 1
	}
	var (
		mu     sync.Mutex
		errs   = make([]error, len(hosts))
		wg     sync.WaitGroup
		sem    = make(chan struct{}, limit)
		failed int
	)
	for i, spec := range hosts {
		if step.Serial && failed > 0 {
			break // one by one: stop at the first failure
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			lines, err := r.runHost(ctx, step, phase, spec)
			d := time.Since(t0).Round(10 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			name := spec.Label()
			if err != nil {
				failed++
				errs[i] = err
				fmt.Fprintf(w, "[%s] %-28s FAILED after %s: %v\n", step.Phase, name, d, err)
				r.Log.Info("phase failed", "phase", step.Phase, "host", spec.Name, "duration", d, "error", err)
				return
			}
			status := "ok"
			if r.DryRun && !isReadOnly(phase) {
				status = "up to date"
				if len(lines) > 0 {
					status = "would change:"
				}
			}
			fmt.Fprintf(w, "[%s] %-28s %s %s\n", step.Phase, name, status, d)
			for _, l := range lines {
				fmt.Fprintf(w, "[%s] %-28s   - %s\n", step.Phase, "", l)
			}
			r.Log.Info("phase done", "phase", step.Phase, "host", spec.Name, "duration", d, "plan", lines)
		}()
		if step.Serial {
			wg.Wait()
		}
	}
	wg.Wait()
	if failed == 0 {
		return nil
	}
	var agg *multierror.Error
	for _, err := range errs {
		if err != nil {
			agg = multierror.Append(agg, err)
		}
	}
	return &StepError{Phase: step.Phase, Failed: failed, Of: len(hosts), Err: agg.ErrorOrNil()}
}

// runHost runs (or plans) a phase on one host. Errors name the host.
func (r *Runner) runHost(ctx context.Context, step playbooks.Step, phase Phase, spec *config.Host) ([]string, error) {
	h, err := r.Pool.Get(ctx, spec)
	if err != nil {
		return nil, err
	}
	if r.DryRun && !isReadOnly(phase) {
		planner, ok := phase.(Planner)
		if !ok {
			return []string{"would " + strings.ToLower(phase.Title()[:1]) + phase.Title()[1:]}, nil
		}
		lines, err := planner.Plan(ctx, h)
		if err != nil {
			return nil, h.Wrap(err)
		}
		return lines, nil
	}
	if err := phase.Run(ctx, h); err != nil {
		return nil, h.Wrap(err)
	}
	return nil, nil
}
