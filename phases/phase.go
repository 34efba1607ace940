// Package phases holds one phase per concern of an action (connect, facts,
// bundle, ...), the Phase interface they share and the runner that plays a
// playbook's steps over the hosts.
package phases

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// Phase is one concern of an action, run on each host a step selects.
type Phase interface {
	// Title says what the phase does, for progress lines.
	Title() string
	Run(ctx context.Context, h *host.Host) error
}

// Optional capabilities, checked at run time.
type (
	// Preparer runs once before the phase's hosts (hash a file, load the
	// PKI), and may stop the step.
	Preparer interface {
		Prepare(ctx context.Context) error
	}
	// Planner tells, without changing anything, what Run would change on a
	// host: the lines --dry-run prints. An empty plan means "up to date".
	Planner interface {
		Plan(ctx context.Context, h *host.Host) ([]string, error)
	}
	// ReadOnly phases change nothing, so --dry-run runs them as they are
	// (the facts a plan needs).
	ReadOnly interface {
		ReadOnly() bool
	}
)

// Env is what phases are built from: the cluster, where its state and the
// bundle are, and where to report. One value per run; phases do not
// modify it.
type Env struct {
	Cluster   *config.Cluster
	StateDir  string
	BundleDir string
	Bundle    *bundle.Manifest
	Log       *slog.Logger
	Out       io.Writer
}

// constructors builds each phase by name.
var constructors = map[string]func(*Env) Phase{
	"connect": func(*Env) Phase { return connectPhase{} },
	"facts":   func(env *Env) Phase { return &factsPhase{env: env} },
	"bundle":  func(env *Env) Phase { return &bundlePhase{env: env} },
}

// New builds the named phase.
func New(name string, env *Env) (Phase, error) {
	c, ok := constructors[name]
	if !ok {
		return nil, fmt.Errorf("no phase %q", name)
	}
	return c(env), nil
}

// Names lists every phase.
func Names() []string {
	out := make([]string, 0, len(constructors))
	for n := range constructors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
