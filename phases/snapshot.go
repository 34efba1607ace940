package phases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/atomicfile"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// SnapshotTimerUnit takes scheduled snapshots on a control plane.
const SnapshotTimerUnit = "kubeforge-etcd-snapshot"

// HostSnapshotDir holds snapshots on an etcd member: the ones being taken
// or restored, and the timer's.
const HostSnapshotDir = "/var/lib/kubeforge/snapshots"

// SnapshotInfo is what etcdutl says of a snapshot file.
type SnapshotInfo struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	SHA256    string `json:"sha256"`
	File      string `json:"file"`
	Member    string `json:"member,omitempty"`
}

// etcdutl runs the bundle's etcdutl on this machine.
func etcdutl(env *Env, args ...string) ([]byte, error) {
	if env.Bundle == nil {
		return nil, errors.New("no bundle: etcdutl comes with it (--bundle)")
	}
	f, _, ok := env.Bundle.Program("etcdutl")
	if !ok {
		return nil, errors.New("the bundle has no etcdutl")
	}
	cmd := exec.Command(filepath.Join(env.BundleDir, f.Path), append([]string{"etcdutl"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("etcdutl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// CheckSnapshot checks a snapshot file on this machine the way a restore
// would read it: etcdutl restores it into a scratch directory (which
// verifies its integrity hash) and reports its revision and keys; a
// recorded .sha256 beside it must match. A truncated or corrupt file is an
// error here, before anything in the cluster stops.
func CheckSnapshot(env *Env, file string) (*SnapshotInfo, error) {
	sum, _, err := bundle.HashFile(file)
	if err != nil {
		return nil, err
	}
	if want, err := os.ReadFile(file + ".sha256"); err == nil {
		if f := strings.Fields(string(want)); len(f) == 0 || f[0] != sum {
			return nil, &RefusalError{fmt.Sprintf("%s: its sha256 is %s, but %s.sha256 records %q: the file changed since it was saved; nothing was stopped", file, sum, file, strings.TrimSpace(string(want)))}
		}
	}
	scratch, err := os.MkdirTemp("", "kubeforge-snapshot-check")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	if _, err := etcdutl(env, "snapshot", "restore", file, "--data-dir", filepath.Join(scratch, "data")); err != nil {
		return nil, &RefusalError{fmt.Sprintf("%s is not a whole etcd snapshot (truncated or corrupt?): %v; nothing was stopped", file, err)}
	}
	out, err := etcdutl(env, "snapshot", "status", file, "-w", "json")
	if err != nil {
		return nil, err
	}
	info := &SnapshotInfo{SHA256: sum, File: file}
	if err := json.Unmarshal(out, info); err != nil {
		return nil, fmt.Errorf("etcdutl snapshot status: %w", err)
	}
	return info, nil
}

// SaveSnapshot takes a snapshot on a healthy member, brings it to out on
// this machine, checks it and records its sha256 beside it.
func SaveSnapshot(ctx context.Context, env *Env, out string) (*SnapshotInfo, error) {
	h, err := env.Client.HealthyEtcdMember(ctx)
	if err != nil {
		return nil, err
	}
	remote := path.Join(HostSnapshotDir, "save-"+BackupStamp(time.Now())+".db")
	if _, err := h.Run(ctx, fmt.Sprintf("mkdir -p -m 0700 %s && %s", HostSnapshotDir, etcdctlSnapshot("snapshot save "+remote))); err != nil {
		return nil, fmt.Errorf("take the snapshot on %s: %w", h, err)
	}
	defer h.Run(context.WithoutCancel(ctx), "rm -f "+remote) //nolint:errcheck // best effort
	if _, err := h.Download(ctx, remote, out); err != nil {
		return nil, err
	}
	info, err := CheckSnapshot(env, out)
	if err != nil {
		os.Remove(out)
		return nil, err
	}
	info.Member = h.Name()
	if err := atomicfile.Write(out+".sha256", []byte(info.SHA256+"  "+filepath.Base(out)+"\n"), 0o600, 0o700); err != nil {
		return nil, err
	}
	return info, nil
}

// The phases of `kubeforge etcd snapshot restore`: the file is checked
// first (nothing stops for a bad one), copied to every member, the API
// servers and every member stop, each member's data is replaced by the
// snapshot (same names, a new cluster), then etcd starts everywhere at
// once, the control planes one at a time, and the nodes are Ready.

// snapshotCheckPhase checks the snapshot on the admin machine.
type snapshotCheckPhase struct {
	env  *Env
	file string
}

// NewSnapshotCheck checks file before a restore changes anything.
func NewSnapshotCheck(env *Env, file string) Phase { return &snapshotCheckPhase{env: env, file: file} }

func (*snapshotCheckPhase) Title() string  { return "Check the snapshot (before anything stops)" }
func (*snapshotCheckPhase) ReadOnly() bool { return true }
func (p *snapshotCheckPhase) Prepare(context.Context) error {
	info, err := CheckSnapshot(p.env, p.file)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.env.Out, "[snapshot-check] %s: revision %d, %d keys, %d bytes, sha256 %s\n", p.file, info.Revision, info.TotalKey, info.TotalSize, info.SHA256)
	return nil
}
func (*snapshotCheckPhase) Run(context.Context, *host.Host) error { return nil }

// restoreFile is where the snapshot waits on each member.
func restoreFile(stamp string) string { return path.Join(HostSnapshotDir, "restore-"+stamp+".db") }

// snapshotRestorePhase replaces a member's data with the snapshot.
type snapshotRestorePhase struct {
	env   *Env
	file  string
	stamp string
	sum   string // the file's sha256, hashed once for every member
}

// NewSnapshotRestore restores file on each etcd member (stamp names the
// copies and the old data directory kept aside).
func NewSnapshotRestore(env *Env, file, stamp string) Phase {
	return &snapshotRestorePhase{env: env, file: file, stamp: stamp}
}

func (*snapshotRestorePhase) Title() string {
	return "Replace each etcd member's data with the snapshot"
}

func (p *snapshotRestorePhase) Plan(context.Context, *host.Host) ([]string, error) {
	return []string{"stop the API server and etcd, keep " + EtcdDataDir + " as " + EtcdDataDir + ".before-restore-" + p.stamp + ", restore the snapshot (owned by " + EtcdUser + ")"}, nil
}

func (p *snapshotRestorePhase) Prepare(context.Context) error {
	sum, _, err := bundle.HashFile(p.file)
	p.sum = sum
	return err
}

func (p *snapshotRestorePhase) Run(ctx context.Context, h *host.Host) error {
	remote := restoreFile(p.stamp)
	if _, err := h.Run(ctx, "mkdir -p -m 0700 "+HostSnapshotDir); err != nil {
		return err
	}
	if _, err := h.Upload(ctx, p.file, remote, p.sum, host.FileMode{Perm: 0o600}); err != nil {
		return err
	}
	// etcdutl writes the new data directory as root; it is given to etcd
	// (as etcd's unit would at its start), whose user a member set up
	// before etcd had one does not have yet.
	if _, err := (Desired{Files: []File{etcdSysusers()}}).Apply(ctx, h); err != nil {
		return err
	}
	if err := createEtcdUser(ctx, h); err != nil {
		return err
	}
	var initial []string
	for _, m := range p.env.Cluster.HostsWith(config.RoleEtcd) {
		initial = append(initial, m.Name+"="+etcdPeerURL(m))
	}
	script := fmt.Sprintf(`set -e
systemctl stop kube-apiserver.service kube-controller-manager.service kube-scheduler.service etcd.service 2>/dev/null || true
if [ -e %[1]s ]; then mv %[1]s %[1]s.before-restore-%[2]s; fi
%[3]s snapshot restore %[4]s --name %[5]s --initial-cluster %[6]s --initial-cluster-token %[7]s --initial-advertise-peer-urls %[8]s --data-dir %[1]s >/dev/null
chmod 0700 %[1]s
chown -R %[9]s:%[9]s %[1]s
rm -f %[4]s`, EtcdDataDir, p.stamp, bin("etcdutl"), remote, h.Name(), host.Quote(strings.Join(initial, ",")),
		"kubeforge-"+p.env.Cluster.Metadata.Name, etcdPeerURL(h.Spec), EtcdUser)
	if _, err := h.Run(ctx, script); err != nil {
		return fmt.Errorf("restore the snapshot: %w (the old data is %s.before-restore-%s)", err, EtcdDataDir, p.stamp)
	}
	return nil
}

// stopControlPlanePhase stops the API servers and controllers before the
// etcd members change under them.
type stopControlPlanePhase struct{ env *Env }

func (*stopControlPlanePhase) Title() string { return "Stop the API servers and controllers" }
func (*stopControlPlanePhase) Plan(context.Context, *host.Host) ([]string, error) {
	return []string{"stop kube-apiserver, kube-controller-manager, kube-scheduler"}, nil
}
func (*stopControlPlanePhase) Run(ctx context.Context, h *host.Host) error {
	// No graceful stop: the API server would wait up to its stop timeout
	// for watches to end, and its data is about to be replaced anyway.
	_, err := h.Run(ctx, "systemctl kill --signal=SIGKILL kube-apiserver.service kube-controller-manager.service kube-scheduler.service 2>/dev/null; systemctl stop kube-apiserver.service kube-controller-manager.service kube-scheduler.service")
	return err
}

// SnapshotSavePhase takes a snapshot on a healthy member and brings it
// here (`kubeforge etcd snapshot save`).
type SnapshotSavePhase struct {
	env  *Env
	out  string
	Info *SnapshotInfo
}

// NewSnapshotSave saves a snapshot to out; Info holds what it saved.
func NewSnapshotSave(env *Env, out string) *SnapshotSavePhase {
	return &SnapshotSavePhase{env: env, out: out}
}

func (*SnapshotSavePhase) Title() string { return "Take an etcd snapshot on a healthy member" }
func (p *SnapshotSavePhase) Prepare(ctx context.Context) error {
	if p.env.DryRun {
		fmt.Fprintf(p.env.Out, "[snapshot-save] would take a snapshot on a healthy etcd member and save it as %s\n", p.out)
		return nil
	}
	info, err := SaveSnapshot(ctx, p.env, p.out)
	p.Info = info
	return err
}
func (*SnapshotSavePhase) Run(context.Context, *host.Host) error { return nil }
