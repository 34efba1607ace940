package phases

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/vip"
	"github.com/kubeforge/kubeforge/templates"
)

// The renewal timer: on every control plane, a systemd timer runs
// `kubeforge certs renew-local`, which renews that host's certificates
// when less than the window remains, restarts what uses them with the
// rolling renewal's health gates (VIP given away first), one control plane
// at a time (a Lease is the lock), and approves the kubelets' serving
// requests that pass kubeforge's checks.

// Files of the renewal timer on a control plane.
const (
	TimerBinary  = "/usr/local/bin/kubeforge"
	TimerUnit    = "kubeforge-certs-renew"
	TimerCluster = "/etc/kubernetes/kubeforge-cluster.yaml"
	// DefaultRenewWindow: renew when less than this remains.
	DefaultRenewWindow = 30 * 24 * time.Hour
)

// renewTimerPhase installs (or removes) the renewal timer.
type renewTimerPhase struct {
	env    *Env
	binary string // the kubeforge binary to install; "" removes the timer
}

// NewRenewTimer installs the timer with binary (this kubeforge), or, with
// binary "", removes it.
func NewRenewTimer(env *Env, binary string) Phase { return &renewTimerPhase{env: env, binary: binary} }

func (p *renewTimerPhase) Title() string {
	if p.binary == "" {
		return "Remove the certificate renewal timer"
	}
	return "Install the certificate renewal timer"
}

// timerKeys are the CA keys a control plane needs to renew its own
// certificates (the cluster CA's is there already for the controller-
// manager): with the timer, a control plane holds every CA key, as
// kubeadm's do.
var timerKeys = []string{"pki/etcd/ca.key", "pki/front-proxy-ca.key"}

func (p *renewTimerPhase) desired(h *host.Host) (Desired, error) {
	files, err := p.env.pkiFiles(timerKeys[0], pki("etcd/ca.key"), timerKeys[1], pki("front-proxy-ca.key"))
	if err != nil {
		return Desired{}, err
	}
	published, err := config.Published(p.env.Cluster)
	if err != nil {
		return Desired{}, err
	}
	files = append(files, File{Path: TimerCluster, Data: append([]byte("# "+templates.Header+"\n# The cluster as the renewal timer sees it (no SSH settings).\n"), published...), Mode: host.FileMode{Perm: 0o644}})
	service, err := templates.Render("systemd/renew.service.tmpl", map[string]any{
		"Binary": TimerBinary, "Node": h.Name(), "Window": DefaultRenewWindow.String(), "Cluster": TimerCluster,
	})
	if err != nil {
		return Desired{}, err
	}
	timer, err := templates.Render("systemd/renew.timer.tmpl", map[string]any{"Unit": TimerUnit})
	if err != nil {
		return Desired{}, err
	}
	files = append(files,
		File{Path: UnitPath(TimerUnit), Data: service, Mode: host.FileMode{Perm: unitPerm}},
		File{Path: path.Join("/etc/systemd/system", TimerUnit+".timer"), Data: timer, Mode: host.FileMode{Perm: unitPerm}})
	return Desired{Files: files}, nil
}

func (p *renewTimerPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	if p.binary == "" {
		return []string{"stop and remove " + TimerUnit + ".timer, " + TimerBinary + " and the etcd and front-proxy CA keys"}, nil
	}
	d, err := p.desired(h)
	if err != nil {
		return nil, err
	}
	lines, err := d.Plan(ctx, h)
	return append(lines, "install "+TimerBinary, "enable "+TimerUnit+".timer"), err
}

func (p *renewTimerPhase) Run(ctx context.Context, h *host.Host) error {
	if p.binary == "" {
		return removeTimer(ctx, h, TimerUnit, TimerBinary, TimerCluster, pki("etcd/ca.key"), pki("front-proxy-ca.key"))
	}
	sum, _, err := bundle.HashFile(p.binary)
	if err != nil {
		return err
	}
	if _, err := h.Upload(ctx, p.binary, TimerBinary, sum, host.FileMode{Perm: 0o755}); err != nil {
		return err
	}
	d, err := p.desired(h)
	if err != nil {
		return err
	}
	return enableTimer(ctx, h, d, TimerUnit)
}

// enableTimer writes a timer's files (its units among them) and starts it.
func enableTimer(ctx context.Context, h *host.Host, d Desired, unit string) error {
	if _, err := d.Apply(ctx, h); err != nil {
		return err
	}
	_, err := h.Run(ctx, "systemctl daemon-reload && systemctl enable --now "+unit+".timer >/dev/null 2>&1")
	return err
}

// removeTimer stops a timer and removes its units and the files it used.
func removeTimer(ctx context.Context, h *host.Host, unit string, files ...string) error {
	_, err := h.Run(ctx, fmt.Sprintf(`systemctl disable --now %[1]s.timer >/dev/null 2>&1 || true
rm -f /etc/systemd/system/%[1]s.timer /etc/systemd/system/%[1]s.service %[2]s
systemctl daemon-reload`, unit, strings.Join(files, " ")))
	return err
}

// LocalRenewal is what `kubeforge certs renew-local` did.
type LocalRenewal struct {
	Renewed   []certs.Result
	Restarted []string
	Approved  []string
	Refused   []error
}

// RenewLocal renews the certificates of this control plane (h, the local
// machine) that expire within window, then restarts what uses them: the
// VIP given away first, etcd (the etcd cluster healthy before going on),
// the API server (/readyz), the controller-manager and scheduler; and
// approves the kubelets' pending serving requests. The caller holds the
// lock that keeps the other control planes waiting. keepalived's
// configuration, with its maintenance check, is brought up to date when
// the timer is installed.
func RenewLocal(ctx context.Context, env *Env, h *host.Host, window time.Duration) (*LocalRenewal, error) {
	res := &LocalRenewal{}
	_, renewed, err := certs.RenewWithin(certs.Dir(KubernetesDir), window, env.Cluster.Spec.Certificates.Validity.Duration, time.Now())
	if err != nil {
		return res, err
	}
	res.Renewed = renewed
	r := restartsFor(renewed, h.Spec.Has(config.RoleEtcd))
	client := env.Client
	if r.etcd || r.apiServer {
		moved := vip.Movable(env.Cluster)
		if moved {
			if err := vip.MoveOff(ctx, client, env.Cluster, h, h); err != nil {
				return res, err
			}
		}
		// Each healthy again before the next: etcd with the whole etcd
		// cluster, the API server on /readyz.
		for _, s := range []struct {
			name    string
			restart bool
			healthy func() error
		}{
			{"etcd", r.etcd, func() error { return client.WaitEtcdCluster(ctx, h, 2*time.Minute) }},
			{"kube-apiserver", r.apiServer, func() error { return client.WaitAPIServer(ctx, h, 3*time.Minute) }},
		} {
			if !s.restart {
				continue
			}
			if _, err := h.Run(ctx, "systemctl restart "+s.name+".service"); err != nil {
				return res, err
			}
			res.Restarted = append(res.Restarted, s.name)
			if err := s.healthy(); err != nil {
				return res, err
			}
		}
		if moved {
			if err := vip.Return(ctx, client, env.Cluster, h); err != nil {
				return res, err
			}
		}
	}
	for _, s := range r.controllers {
		if _, err := h.Run(ctx, "systemctl restart "+s+".service"); err != nil {
			return res, err
		}
		res.Restarted = append(res.Restarted, s)
	}
	res.Approved, res.Refused, err = client.ApproveServingCSRs(ctx, "")
	return res, err
}

// restarts are the services that read the renewed files.
type restarts struct {
	etcd, apiServer bool
	controllers     []string
}

func restartsFor(renewed []certs.Result, member bool) restarts {
	var changed []string
	for _, r := range renewed {
		changed = append(changed, r.Path)
	}
	uses := func(prefixes ...string) bool {
		return slices.ContainsFunc(changed, func(p string) bool {
			return slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(p, pre) })
		})
	}
	r := restarts{etcd: member && uses("pki/etcd/server", "pki/etcd/peer"), apiServer: uses("pki/apiserver", "pki/front-proxy-client")}
	if uses(certs.ControllerManagerConf) {
		r.controllers = append(r.controllers, "kube-controller-manager")
	}
	if uses(certs.SchedulerConf) {
		r.controllers = append(r.controllers, "kube-scheduler")
	}
	return r
}
