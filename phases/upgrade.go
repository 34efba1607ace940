package phases

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/semver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/version"
)

// EtcdMinFor37 is the etcd release every member must run before any moves
// to etcd 3.7 (etcd's upgrade guide for 3.7).
const EtcdMinFor37 = "v3.6.11"

// UpgradeHost is what `upgrade plan` reads on one host, besides its facts.
type UpgradeHost struct {
	Name string `json:"name"`
	// Bundle is the Kubernetes release of the bundle the host runs, ""
	// when it has none unpacked; BundleEtcd its etcd.
	Bundle     string `json:"bundle"`
	BundleEtcd string `json:"bundleEtcd,omitempty"`
	// OSContainerd: the node runs the OS's containerd, which the upgrade
	// replaces with the bundle's while the node is drained.
	OSContainerd bool `json:"osContainerd"`
	// FreeBytes is the free space where bundles are unpacked.
	FreeBytes int64 `json:"freeBytes"`
	// Current is the directory current points at (the bundle's sum).
	Current string `json:"current,omitempty"`
}

// upgradeReadPhase reads, on every host, the bundle it runs and the room
// for another, in one round trip.
type upgradeReadPhase struct {
	env  *Env
	mu   sync.Mutex
	sink func(UpgradeHost)
}

// NewUpgradeRead builds the phase; sink gets each host's answer.
func NewUpgradeRead(env *Env, sink func(UpgradeHost)) Phase {
	return &upgradeReadPhase{env: env, sink: sink}
}

func (*upgradeReadPhase) Title() string  { return "Read the versions each host runs" }
func (*upgradeReadPhase) ReadOnly() bool { return true }

func (p *upgradeReadPhase) Run(ctx context.Context, h *host.Host) error {
	f, err := h.Facts(ctx)
	if err != nil {
		return err
	}
	script := fmt.Sprintf(`d=%[1]s; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
df -P -B1 "$d" | awk 'NR==2 {print $4}'
readlink %[3]s || echo
cat %[2]s 2>/dev/null || true`, host.Quote(BundleRoot), host.Quote(path.Join(CurrentBundle(), bundle.ManifestFile)), host.Quote(CurrentBundle()))
	out, err := h.Run(ctx, script)
	if err != nil {
		return err
	}
	free, rest, _ := strings.Cut(out, "\n")
	current, manifest, _ := strings.Cut(rest, "\n")
	u := UpgradeHost{Name: h.Name(), OSContainerd: usesOSContainerd(f), Current: strings.TrimSpace(current)}
	if u.FreeBytes, err = strconv.ParseInt(strings.TrimSpace(free), 10, 64); err != nil {
		return h.Errorf("free space under %s: %q is not a number", BundleRoot, free)
	}
	if strings.TrimSpace(manifest) != "" {
		m, err := bundle.Parse(h.Name()+":"+CurrentBundle(), []byte(manifest))
		if err != nil {
			return h.Errorf("the bundle it runs: %v", err)
		}
		u.Bundle = m.Kubernetes()
		if _, pr, ok := m.Program("etcd"); ok {
			u.BundleEtcd = pr.Version
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sink(u)
	return nil
}

// UpgradeInput is everything `upgrade plan` decides from: the cluster as
// it runs, and the bundle it would move to.
type UpgradeInput struct {
	Cluster *config.Cluster
	Target  *bundle.Manifest
	Hosts   map[string]UpgradeHost
	// APIServers: each control plane's API server version (/version), or
	// the error reading it.
	APIServers map[string]string
	Nodes      []NodeStatus
	Etcd       []EtcdStatus
	// SoonestExpiry: the first certificate of the state directory to
	// expire, and when.
	SoonestCert   string
	SoonestExpiry time.Time
	// BlockingPDBs: "ns/name (on node1, node2: why)".
	BlockingPDBs []string
	// DeprecatedAPIs in use, with the release that removes each.
	DeprecatedAPIs map[string]string // "batch/v1beta1 cronjobs" -> "1.38"
	// FileChanged: the cluster file differs from the one the cluster was
	// last set up with.
	FileChanged bool
	Now         time.Time
	// Unread: what could not be read, each a refusal.
	Unread []string
}

// GatherUpgrade reads what PlanUpgrade decides from, besides the hosts
// (the upgrade-read step): the API servers' versions, the nodes, the etcd
// members, the state directory's certificates, the PodDisruptionBudgets,
// the deprecated APIs in use and the cluster file the cluster keeps.
func GatherUpgrade(ctx context.Context, env *Env, hosts map[string]UpgradeHost, now time.Time) UpgradeInput {
	in := UpgradeInput{Cluster: env.Cluster, Target: env.Bundle, Hosts: hosts, Now: now,
		APIServers: map[string]string{}, DeprecatedAPIs: map[string]string{}}
	unread := func(what string, err error) { in.Unread = append(in.Unread, what+": "+err.Error()) }
	for _, spec := range env.Cluster.HostsWith(config.RoleControlPlane) {
		h, err := env.Connect(ctx, spec)
		if err != nil {
			unread("control plane "+spec.Name, err)
			continue
		}
		v, err := env.Client.ServerVersion(ctx, h)
		if err != nil {
			unread("control plane "+spec.Name, err)
			continue
		}
		in.APIServers[spec.Name] = v
		apis, err := env.Client.DeprecatedAPIs(ctx, h)
		if err != nil {
			unread("control plane "+spec.Name, err)
		}
		for _, a := range apis {
			in.DeprecatedAPIs[a.String()] = a.RemovedRelease
		}
	}
	var err error
	if in.Nodes, in.Etcd, err = ClusterStatus(ctx, env); err != nil {
		unread("the cluster", err)
	}
	if expiries, err := certs.Check(env.StateDir.PKI(), now); err != nil {
		unread("the state directory's certificates", err)
	} else {
		for _, e := range expiries {
			if e.Error == "" && !e.NotAfter.IsZero() && (in.SoonestExpiry.IsZero() || e.NotAfter.Before(in.SoonestExpiry)) {
				in.SoonestCert, in.SoonestExpiry = e.Name, e.NotAfter
			}
		}
	}
	pdbs, err := env.Client.BlockingPDBs(ctx)
	if err != nil {
		unread("the PodDisruptionBudgets", err)
	}
	for _, b := range pdbs {
		in.BlockingPDBs = append(in.BlockingPDBs, fmt.Sprintf("%s (pods on %s: %s)", b, strings.Join(b.Nodes, ", "), b.Reason))
	}
	if in.FileChanged, err = fileChanged(ctx, env); err != nil {
		unread("the cluster file the cluster keeps (kube-system/"+ConfigMapName+")", err)
	}
	return in
}

// fileChanged tells whether the cluster file differs from the one the
// cluster keeps, both read and written back by this kubeforge (so a field
// an older kubeforge did not write is no difference).
func fileChanged(ctx context.Context, env *Env) (bool, error) {
	cm, err := env.Client.ConfigMap(ctx, metav1.NamespaceSystem, ConfigMapName)
	if err != nil {
		return false, err
	}
	kept, _, err := config.Parse("kube-system/"+ConfigMapName, []byte(cm.Data["cluster.yaml"]))
	if err != nil {
		return false, err
	}
	a, err := config.Published(kept)
	if err != nil {
		return false, err
	}
	b, err := config.Published(env.Cluster)
	if err != nil {
		return false, err
	}
	return !bytes.Equal(a, b), nil
}

// UpgradeChange is one component of one host that moves.
type UpgradeChange struct {
	Host      string `json:"host"`
	Component string `json:"component"`
	From      string `json:"from"`
	To        string `json:"to"`
}

// UpgradePlan is what `upgrade apply` would do, in its order.
type UpgradePlan struct {
	From          string          `json:"from"` // the API servers' oldest version
	To            string          `json:"to"`
	ControlPlanes []string        `json:"controlPlanes"`
	Workers       []string        `json:"workers"`
	Changes       []UpgradeChange `json:"changes"`
	// Refused says why the upgrade cannot go ahead; nothing moves then.
	Refused []string `json:"refused"`
}

// Nothing reports whether the cluster already runs the target everywhere.
func (p *UpgradePlan) Nothing() bool { return len(p.Changes) == 0 }

// UpgradeDuration bounds how long an upgrade may take: the certificates
// must outlive it.
const UpgradeDuration = 24 * time.Hour

// PlanUpgrade decides what an upgrade to in.Target changes, and refuses
// what upstream forbids or what would not survive the way (each reason a
// line that says what to do).
func PlanUpgrade(in UpgradeInput) *UpgradePlan {
	p := &UpgradePlan{To: in.Target.Kubernetes()}
	refuse := func(format string, args ...any) { p.Refused = append(p.Refused, fmt.Sprintf(format, args...)) }
	for _, u := range in.Unread {
		refuse("could not read %s", u)
	}
	targetMinor := version.Minor(p.To)
	targetEtcd := ""
	if _, pr, ok := in.Target.Program("etcd"); ok {
		targetEtcd = pr.Version
	}
	targetRuntime := ""
	if _, pr, ok := in.Target.Program("containerd"); ok {
		targetRuntime = "containerd://" + strings.TrimPrefix(pr.Version, "v")
	}

	// The API servers decide where the cluster is.
	var servers []string
	for _, h := range in.Cluster.HostsWith(config.RoleControlPlane) {
		v, ok := in.APIServers[h.Name]
		switch {
		case !ok || v == "":
			refuse("control plane %s: its API server's version could not be read: see kubeforge status", h.Name)
		case !semver.IsValid(v):
			refuse("control plane %s: its API server says version %q", h.Name, v)
		default:
			servers = append(servers, v)
		}
	}
	semver.Sort(servers)
	if len(servers) > 0 {
		p.From = servers[0]
		newest := servers[len(servers)-1]
		switch {
		case semver.Compare(p.To, newest) < 0:
			refuse("the bundle is Kubernetes %s, older than the API servers' %s: kubeforge does not downgrade (restore an etcd snapshot taken before the upgrade instead)", p.To, newest)
		case minorOf(p.To) > minorOf(p.From)+1:
			next := fmt.Sprintf("1.%d", minorOf(p.From)+1)
			refuse("%s to %s skips Kubernetes %s: upstream moves the control plane one minor at a time; upgrade with a bundle of %s first (make bundle K8S=%s)",
				p.From, p.To, next, next, next)
		}
	}
	for _, n := range in.Nodes {
		if n.Ready != "True" {
			refuse("node %s is not Ready (Ready=%s): bring it back (kubeforge status) or remove it (kubeforge delete node) first", n.Name, n.Ready)
		}
		if len(n.Pressure) > 0 {
			refuse("node %s reports %s: its kubelet evicts pods and takes no new ones, so the pods drained from other nodes may find no room: free it first (for DiskPressure, disk space under /var/lib/containerd and /var/lib/kubelet)",
				n.Name, strings.Join(n.Pressure, ", "))
		}
		if semver.IsValid(n.Kubelet) && semver.Compare(n.Kubelet, p.To) > 0 {
			refuse("node %s: kubelet %s is newer than %s: a kubelet must never be newer than the API servers", n.Name, n.Kubelet, p.To)
		}
		if semver.IsValid(n.Kubelet) && minorOf(p.To)-minorOf(n.Kubelet) > 3 {
			refuse("node %s: kubelet %s is more than three minors behind %s", n.Name, n.Kubelet, p.To)
		}
	}
	for _, m := range in.Etcd {
		mv := m.semver()
		switch {
		case !m.Healthy && m.Learner:
			refuse("etcd member %s is a learner, not a voter: finish its join (kubeforge join --host %s) first", m.Name, m.Name)
		case !m.Healthy:
			refuse("etcd member %s is not healthy (%s): every member must vote before one restarts", m.Name, m.Error)
		case targetEtcd != "" && semver.IsValid(mv) && semver.Compare(mv, targetEtcd) > 0:
			refuse("etcd member %s runs %s, newer than the bundle's %s: etcd does not downgrade", m.Name, mv, targetEtcd)
		}
		if semver.MajorMinor(targetEtcd) == "v3.7" && semver.MajorMinor(mv) == "v3.6" && semver.Compare(mv, EtcdMinFor37) < 0 {
			refuse("etcd member %s runs %s; etcd 3.7 needs every member at %s or later first: upgrade with a bundle of Kubernetes %s (etcd v3.6.17) first",
				m.Name, mv, EtcdMinFor37, prevMinor(targetMinor))
		}
	}
	if len(in.Etcd) == 0 {
		refuse("no etcd member could be read: see kubeforge status")
	}
	if !in.SoonestExpiry.IsZero() && in.SoonestExpiry.Before(in.Now.Add(UpgradeDuration)) {
		refuse("certificate %s expires %s, before an upgrade could finish: renew first (kubeforge certs renew all -f CLUSTER_FILE)",
			in.SoonestCert, in.SoonestExpiry.UTC().Format(time.RFC3339))
	}
	need := unpackedSize(in.Target) + unpackedSize(in.Target)/5
	for _, h := range in.Cluster.Spec.Hosts {
		u, ok := in.Hosts[h.Name]
		if !ok {
			refuse("host %s could not be read", h.Name)
			continue
		}
		if u.FreeBytes < need {
			refuse("host %s: %d MiB free under %s, the new bundle needs %d MiB: free some space there", h.Name, u.FreeBytes>>20, BundleRoot, need>>20)
		}
	}
	for _, b := range in.BlockingPDBs {
		refuse("PodDisruptionBudget %s allows no eviction now, so the drain of its nodes would wait for ever: scale its workload up or relax it first", b)
	}
	var removed []string
	for api, release := range in.DeprecatedAPIs {
		if release != "" && minorOf("v"+release+".0") <= minorOf(p.To) {
			removed = append(removed, api+" (removed in "+release+")")
		}
	}
	sort.Strings(removed)
	if len(removed) > 0 {
		refuse("clients still use APIs that Kubernetes %s no longer serves: %s; move them to the current API versions first", targetMinor, strings.Join(removed, ", "))
	}
	if in.FileChanged {
		refuse("the cluster file is not the one the cluster was last set up with: apply it first (kubeforge init -f CLUSTER_FILE, or join for new hosts), then plan the upgrade")
	}

	// What moves where, in apply's order.
	kubelets := map[string]NodeStatus{}
	for _, n := range in.Nodes {
		kubelets[n.Name] = n
	}
	etcdOf := map[string]string{}
	for _, m := range in.Etcd {
		etcdOf[m.Name] = m.semver()
	}
	add := func(h, comp, from, to string) {
		if from != to && to != "" {
			p.Changes = append(p.Changes, UpgradeChange{Host: h, Component: comp, From: orNone(from), To: to})
		}
	}
	for _, h := range in.Cluster.Spec.Hosts {
		if h.Has(config.RoleControlPlane) {
			p.ControlPlanes = append(p.ControlPlanes, h.Name)
		} else {
			p.Workers = append(p.Workers, h.Name)
		}
		if h.Has(config.RoleEtcd) {
			add(h.Name, "etcd", etcdOf[h.Name], targetEtcd)
		}
		if h.Has(config.RoleControlPlane) {
			add(h.Name, "kube-apiserver, controller-manager, scheduler", in.APIServers[h.Name], p.To)
		}
		n := kubelets[h.Name]
		add(h.Name, "kubelet, kube-proxy", n.Kubelet, p.To)
		add(h.Name, "container runtime", n.Runtime, targetRuntime)
		if u := in.Hosts[h.Name]; u.Bundle != "" && u.Bundle != p.To && !slices.ContainsFunc(p.Changes, func(c UpgradeChange) bool { return c.Host == h.Name }) {
			add(h.Name, "bundle", u.Bundle, p.To)
		}
	}
	return p
}

// semver is the member's version as Go modules spell it: etcd says 3.6.17.
func (m EtcdStatus) semver() string {
	if m.Version == "" {
		return ""
	}
	return "v" + strings.TrimPrefix(m.Version, "v")
}

func minorOf(v string) int {
	parts := strings.Split(strings.TrimPrefix(semver.MajorMinor(v), "v"), ".")
	if len(parts) != 2 {
		return 0
	}
	n, _ := strconv.Atoi(parts[1])
	return n
}

func prevMinor(minor string) string {
	i := slices.Index(version.KubernetesMinors, minor)
	if i <= 0 {
		return version.KubernetesMinors[0]
	}
	return version.KubernetesMinors[i-1]
}

func unpackedSize(m *bundle.Manifest) int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	for _, img := range m.Images {
		n += img.Size
	}
	return n
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// CheckBundleMatchesCluster refuses a bundle of another Kubernetes than the
// running cluster's: a node joins at the cluster's version (upgrade apply
// moves the whole cluster).
func CheckBundleMatchesCluster(ctx context.Context, env *Env) error {
	h, err := env.Client.ControlHost(ctx)
	if err != nil {
		return err
	}
	running, err := env.Client.ServerVersion(ctx, h)
	if err != nil {
		return err
	}
	if want := env.Bundle.Kubernetes(); running != want {
		m := version.Minor(running)
		return &RefusalError{fmt.Sprintf("the cluster runs Kubernetes %s and the bundle is %s: a node joins at the cluster's version; "+
			"use a bundle of %s (make bundle K8S=%s), or move the cluster first (kubeforge upgrade apply)", running, want, running, m)}
	}
	return nil
}
