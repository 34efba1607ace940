// Package phases holds one phase per concern of an action (connect, facts,
// bundle, ...), the Phase interface they share and the runner that plays a
// playbook's steps over the hosts.
package phases

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/statedir"
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
	// Waiter is a read-only phase that waits for what the others did
	// (nodes Ready): `phase NAME` of another phase, which runs the
	// read-only ones it needs, does not run it.
	Waiter interface {
		Waits() bool
	}
	// Enabler is a phase that only some clusters or runs need (the VIP
	// without spec.controlPlane.vip): when off, the runner skips it and
	// prints why.
	Enabler interface {
		Enabled() (bool, string)
	}
)

// Env is what phases are built from: the cluster, where its state and the
// bundle are, and where to report. One value per run; phases do not
// modify it.
type Env struct {
	Cluster   *config.Cluster
	StateDir  statedir.Dir
	BundleDir string
	Bundle    *bundle.Manifest
	Log       *slog.Logger
	Out       io.Writer
	// PKI is the certificate spec derived from the cluster file; the PKI
	// itself lives in StateDir.
	PKI certs.Spec
	// Token is the bootstrap token of this run.
	Token Token
	// IgnorePreflight lists preflight checks whose failure is only a
	// warning ("all" for every one).
	IgnorePreflight []string
	// DryRun is set for --dry-run: Prepare must not write either.
	DryRun bool
	// Client asks the running cluster: the API and etcd, as the state
	// directory's super-admin (Admin), or, on a worker joining on its
	// own, as the node itself. Owned by the run, closed with its pool.
	Client *cluster.Client
	// Connect reaches any host of the cluster (the run's pool), for a
	// phase that picks its host itself (one healthy etcd member).
	Connect func(ctx context.Context, spec *config.Host) (*host.Host, error)
	// Phases are those this run plays (the runner sets it: the playbook's,
	// less --skip-phases, or the one of `phase NAME`),
	// for a phase whose work another step may do first.
	Phases []string
	// Targets are the hosts a run narrowed to some is for (Runner.Targets:
	// join --host); empty for a run of every host.
	Targets []string
}

// packagesStep reports whether the run has the packages step, which
// installs every OS package a host needs before the steps that use them.
func (e *Env) packagesStep() bool { return slices.Contains(e.Phases, "packages") }

// constructors builds each phase by name.
var constructors = map[string]func(*Env) Phase{
	"connect":            func(*Env) Phase { return connectPhase{} },
	"facts":              func(env *Env) Phase { return &factsPhase{env: env} },
	"preflight":          func(env *Env) Phase { return &preflightPhase{env: env} },
	"bundle":             func(env *Env) Phase { return &bundlePhase{env: env} },
	"install":            func(env *Env) Phase { return &installPhase{env: env} },
	"runtime":            func(env *Env) Phase { return &runtimePhase{env: env} },
	"packages":           func(env *Env) Phase { return &packagesPhase{env: env} },
	"certs":              func(env *Env) Phase { return &certsPhase{env: env} },
	"etcd":               func(env *Env) Phase { return &etcdPhase{env: env} },
	"control-plane":      func(env *Env) Phase { return &controlPlanePhase{env: env, deferHealth: true} },
	"bootstrap":          func(env *Env) Phase { return &bootstrapPhase{env: env} },
	"kubelet":            func(env *Env) Phase { return &kubeletPhase{env: env} },
	"kubelet-finalize":   func(env *Env) Phase { return &kubeletFinalizePhase{env: env} },
	"kube-proxy":         func(env *Env) Phase { return &proxyPhase{env: env} },
	"cni":                func(env *Env) Phase { return &cniPhase{env: env} },
	"addons":             func(env *Env) Phase { return &addonsPhase{env: env} },
	"ready":              func(env *Env) Phase { return &readyPhase{env: env} },
	"vip":                func(env *Env) Phase { return &vipPhase{env: env} },
	"keepalived":         func(env *Env) Phase { return &vipPhase{env: env, startOnly: true} },
	"vip-ready":          func(env *Env) Phase { return &vipReadyPhase{env: env} },
	"vip-resume":         func(env *Env) Phase { return &vipResumePhase{env: env} },
	"upload-certs":       func(env *Env) Phase { return &uploadCertsPhase{env: env} },
	"certs-inventory":    func(env *Env) Phase { return &certInventoryPhase{env: env} },
	"certs-renew":        func(env *Env) Phase { return &certsRenewPhase{env: env} },
	"certs-backup":       func(env *Env) Phase { return &certsBackupPhase{env: env, stamp: BackupStamp(time.Now())} },
	"renew-preflight":    func(env *Env) Phase { return &renewPreflightPhase{env: env} },
	"roll":               func(env *Env) Phase { return &rollPhase{env: env} },
	"kubelet-certs":      func(env *Env) Phase { return &kubeletCertsPhase{env: env} },
	"certs-verify":       func(env *Env) Phase { return &certsVerifyPhase{env: env} },
	"renew-timer":        func(env *Env) Phase { return &renewTimerPhase{env: env} },
	"snapshot-save":      func(env *Env) Phase { return &SnapshotSavePhase{env: env} },
	"snapshot-check":     func(env *Env) Phase { return &snapshotCheckPhase{env: env} },
	"snapshot-restore":   func(env *Env) Phase { return &snapshotRestorePhase{env: env} },
	"stop-control-plane": func(env *Env) Phase { return &stopControlPlanePhase{env: env} },
	"status":             func(env *Env) Phase { return &statusPhase{env: env} },
	"upgrade-read":       func(env *Env) Phase { return &upgradeReadPhase{env: env, sink: func(UpgradeHost) {}} },
	"upgrade-gate":       func(env *Env) Phase { return NewUpgradeGate(env, UpgradeOptions{Hosts: noHosts}) },
	"bundle-stage":       func(env *Env) Phase { return &bundlePhase{env: env, stage: true} },
	"upgrade-control-planes": func(env *Env) Phase {
		return NewUpgradeNode(env, UpgradeOptions{MaxUnavailable: 1, DrainTimeout: DefaultDrainTimeout})
	},
	"upgrade-workers": func(env *Env) Phase {
		return NewUpgradeNode(env, UpgradeOptions{MaxUnavailable: 1, DrainTimeout: DefaultDrainTimeout})
	},
	"reset":           func(env *Env) Phase { return &resetPhase{env: env} },
	"remove-node":     func(env *Env) Phase { return &removeNodePhase{env: env, target: &config.Host{}} },
	"snapshot-timer":  func(env *Env) Phase { return &snapshotTimerPhase{env: env} },
	"key-add":         func(env *Env) Phase { return &keyStagePhase{env: env, stage: stageAdd} },
	"key-write":       func(env *Env) Phase { return &keyStagePhase{env: env, stage: stageWrite} },
	"key-drop":        func(env *Env) Phase { return &keyStagePhase{env: env, stage: stageDrop} },
	"secrets-rewrite": func(env *Env) Phase { return &secretsRewritePhase{env: env} },
}

// Builder builds phases as New does, except those in own: an action
// builds them itself, with the data only it has (k0sctl's way).
func Builder(own map[string]func(*Env) Phase) func(string, *Env) (Phase, error) {
	return func(name string, env *Env) (Phase, error) {
		if f, ok := own[name]; ok {
			return f(env), nil
		}
		return New(name, env)
	}
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
