package phases

import (
	"context"
	"os"
	"path"

	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/templates"
)

// Scheduled snapshots: on every control plane, a systemd timer saves a
// snapshot of its etcd member, checks it with etcdutl, records its sha256
// and keeps the newest few. They live outside kubeforge's own directories,
// so that a reset leaves them.
const (
	SnapshotScript      = "/usr/local/lib/kubeforge/etcd-snapshot.sh"
	ScheduledSnapshots  = "/var/backups/kubeforge/etcd"
	DefaultSnapshotKeep = 7
)

// SnapshotSchedules are the timer's accepted schedules (systemd calendar
// shorthands).
var SnapshotSchedules = []string{"hourly", "daily", "weekly"}

// snapshotTimerPhase installs (or removes) the snapshot timer.
type snapshotTimerPhase struct {
	env      *Env
	keep     int    // 0 removes the timer
	schedule string // one of SnapshotSchedules
}

// NewSnapshotTimer installs the timer keeping keep snapshots, taken on
// schedule; keep 0 removes it (the snapshots stay).
func NewSnapshotTimer(env *Env, keep int, schedule string) Phase {
	return &snapshotTimerPhase{env: env, keep: keep, schedule: schedule}
}

func (p *snapshotTimerPhase) Title() string {
	if p.keep == 0 {
		return "Remove the etcd snapshot timer"
	}
	return "Install the etcd snapshot timer"
}

func (p *snapshotTimerPhase) desired(h *host.Host) (Desired, error) {
	data := map[string]any{
		"Unit": SnapshotTimerUnit, "Dir": ScheduledSnapshots, "Keep": p.keep, "KeepPlusOne": p.keep + 1,
		"Cluster": p.env.Cluster.Metadata.Name, "Node": h.Name(), "Script": SnapshotScript, "Schedule": p.schedule,
		"Etcdctl": etcdctlSnapshot(""), "Etcdutl": bin("etcdutl"),
	}
	var files []File
	for _, f := range []struct {
		tmpl, path string
		perm       os.FileMode
	}{
		{"etcd/snapshot.sh.tmpl", SnapshotScript, 0o644},
		{"systemd/snapshot.service.tmpl", UnitPath(SnapshotTimerUnit), unitPerm},
		{"systemd/snapshot.timer.tmpl", path.Join("/etc/systemd/system", SnapshotTimerUnit+".timer"), unitPerm},
	} {
		b, err := templates.Render(f.tmpl, data)
		if err != nil {
			return Desired{}, err
		}
		files = append(files, File{Path: f.path, Data: b, Mode: host.FileMode{Perm: f.perm}})
	}
	return Desired{Files: files}, nil
}

func (p *snapshotTimerPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	if p.keep == 0 {
		return []string{"stop and remove " + SnapshotTimerUnit + ".timer (the snapshots in " + ScheduledSnapshots + " stay)"}, nil
	}
	d, err := p.desired(h)
	if err != nil {
		return nil, err
	}
	lines, err := d.Plan(ctx, h)
	return append(lines, "enable "+SnapshotTimerUnit+".timer"), err
}

func (p *snapshotTimerPhase) Run(ctx context.Context, h *host.Host) error {
	if p.keep == 0 {
		return removeTimer(ctx, h, SnapshotTimerUnit, SnapshotScript)
	}
	d, err := p.desired(h)
	if err != nil {
		return err
	}
	return enableTimer(ctx, h, d, SnapshotTimerUnit)
}
