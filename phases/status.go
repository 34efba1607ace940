package phases

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// ServiceStatus is one kubeforge service on a host.
type ServiceStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"` // active, failed, inactive, not installed
	Since    time.Time `json:"since,omitempty"`
	Restarts int       `json:"restarts"`
	Version  string    `json:"version,omitempty"`
}

// Healthy reports whether the service runs.
func (s ServiceStatus) Healthy() bool { return s.State == "active" }

// HostStatus is what `kubeforge status` reads on one host.
type HostStatus struct {
	Name        string          `json:"name"`
	Services    []ServiceStatus `json:"services"`
	HoldsVIP    bool            `json:"holdsVIP"`
	SoonestCert *certs.HostCert `json:"soonestCertificate,omitempty"`
}

// hostServices are the kubeforge services a host runs, by its roles.
func hostServices(c *config.Cluster, h *config.Host) []string {
	out := []string{"containerd", "kubelet", "kube-proxy", "flanneld"}
	if h.Has(config.RoleEtcd) {
		out = append(out, "etcd")
	}
	if h.Has(config.RoleControlPlane) {
		out = append(out, "kube-apiserver", "kube-controller-manager", "kube-scheduler")
		if c.Spec.ControlPlane.VIP != "" {
			out = append(out, "keepalived")
		}
	}
	return out
}

// statusPhase reads a host's services, whether it holds the VIP and its
// soonest certificate expiry, in one round trip.
type statusPhase struct {
	env  *Env
	sink func(HostStatus)
	mu   sync.Mutex
	cas  certs.CAPool // nil when the state directory has none: no certificate column
	now  time.Time
}

// NewStatus is the status phase; sink gets each host's status.
func NewStatus(env *Env, sink func(HostStatus)) Phase { return &statusPhase{env: env, sink: sink} }

func (*statusPhase) Title() string  { return "Read each host's services" }
func (*statusPhase) ReadOnly() bool { return true }

// Prepare reads the CAs once for every host; status reports what it can,
// so a state directory without them only leaves the certificates out.
func (p *statusPhase) Prepare(context.Context) error {
	if cas, err := certs.ReadCAs(p.env.StateDir.PKI()); err == nil {
		p.cas = cas
	}
	p.now = time.Now()
	return nil
}

func (p *statusPhase) Run(ctx context.Context, h *host.Host) error {
	names := hostServices(p.env.Cluster, h.Spec)
	units := make([]string, len(names))
	for i, n := range names {
		units[i] = n + ".service"
	}
	script := fmt.Sprintf(`systemctl show -p Id,LoadState,ActiveState,SubState,ActiveEnterTimestamp,NRestarts,Environment %s
echo "@@tools"
for p in containerd keepalived; do
  # The bundle's program under kubeforge's unit, else the OS's.
  b=$p; [ "$(systemctl show -P FragmentPath $p.service 2>/dev/null)" = /etc/systemd/system/$p.service ] && b=%s/$p
  command -v "$b" >/dev/null && echo "$p=$("$b" --version 2>&1 | head -1)"
done
echo "@@addrs"
ip -o addr show 2>/dev/null
echo "@@certs"
%s`, strings.Join(units, " "), host.Quote(path.Join(CurrentBundle(), "bin")), certs.InventoryScript)
	out, err := h.Run(ctx, script)
	if err != nil {
		return err
	}
	st := HostStatus{Name: h.Name()}
	svcPart, rest, _ := strings.Cut(out, "@@tools\n")
	toolsPart, rest, _ := strings.Cut(rest, "@@addrs\n")
	addrPart, certPart, _ := strings.Cut(rest, "@@certs\n")
	tools := keyValues(toolsPart)
	for _, block := range strings.Split(strings.TrimSpace(svcPart), "\n\n") {
		kv := keyValues(block)
		name := strings.TrimSuffix(kv["Id"], ".service")
		if name == "" {
			continue
		}
		s := ServiceStatus{Name: name, State: kv["ActiveState"]}
		if kv["LoadState"] == "not-found" {
			s.State = "not installed"
		}
		if t, err := time.Parse("Mon 2006-01-02 15:04:05 MST", kv["ActiveEnterTimestamp"]); err == nil {
			s.Since = t
		}
		s.Restarts, _ = strconv.Atoi(kv["NRestarts"])
		s.Version = p.version(name, kv["Environment"], tools)
		st.Services = append(st.Services, s)
	}
	if vip := p.env.Cluster.Spec.ControlPlane.VIP; vip != "" {
		st.HoldsVIP = strings.Contains(addrPart, " "+vip+"/")
	}
	if p.cas != nil {
		for _, c := range certs.ParseInventory(h.Name(), certPart, p.cas, p.now) {
			if c.Error != "" || c.IsCA || c.RotatedBy != certs.RotatedByKubeforge {
				continue
			}
			if st.SoonestCert == nil || c.NotAfter.Before(st.SoonestCert.NotAfter) {
				cc := c
				st.SoonestCert = &cc
			}
		}
	}
	if p.sink != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.sink(st)
	}
	return nil
}

// version is the component's version: the bundle's, named by the binary
// sum in the unit (KUBEFORGE_BINARY=kubelet@sha256:...); for containerd
// and keepalived, what the program the unit runs says (the bundle's, or
// the OS's on a node that keeps it).
func (p *statusPhase) version(name, environment string, tools map[string]string) string {
	switch name {
	case "containerd", "keepalived":
		if tools[name] == "" {
			return ""
		}
		return host.VersionWord(tools[name])
	}
	_, id, ok := strings.Cut(environment, "KUBEFORGE_BINARY=")
	if !ok || p.env.Bundle == nil {
		return ""
	}
	id = strings.Fields(id)[0]
	prog, sum, _ := strings.Cut(strings.Trim(id, `"`), "@sha256:")
	f, pr, ok := p.env.Bundle.Program(prog)
	if !ok {
		return ""
	}
	if !strings.HasPrefix(f.SHA256, sum) {
		return pr.Version + " (another bundle's binary)"
	}
	return pr.Version
}

func keyValues(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// NodeStatus is a node as the API sees it.
type NodeStatus struct {
	Name    string `json:"name"`
	Ready   string `json:"ready"`
	Kubelet string `json:"kubeletVersion"`
	Runtime string `json:"containerRuntime"` // containerd://2.4.2
	// Pressure: the node's pressure conditions that are True (DiskPressure,
	// MemoryPressure, PIDPressure).
	Pressure []string `json:"pressure,omitempty"`
}

// EtcdStatus is an etcd member.
type EtcdStatus struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Learner  bool   `json:"learner"`
	Leader   bool   `json:"leader"`
	Healthy  bool   `json:"healthy"`
	Error    string `json:"error,omitempty"`
	DBSize   int64  `json:"dbSize"`
	Revision int64  `json:"revision"`
	Version  string `json:"version,omitempty"` // the member's etcd, 3.6.17
}

// ClusterStatus reads the nodes and the etcd members: the nodes from the
// API, the members from a healthy one, each member's status and health
// from itself. What cannot be read is an error beside what could.
func ClusterStatus(ctx context.Context, env *Env) ([]NodeStatus, []EtcdStatus, error) {
	var errs []error
	nodes, err := env.Client.Nodes(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	var out []NodeStatus
	for i := range nodes {
		n := NodeStatus{Name: nodes[i].Name, Ready: string(cluster.NodeCondition(&nodes[i], corev1.NodeReady)),
			Kubelet: nodes[i].Status.NodeInfo.KubeletVersion, Runtime: nodes[i].Status.NodeInfo.ContainerRuntimeVersion}
		for _, c := range []corev1.NodeConditionType{corev1.NodeDiskPressure, corev1.NodeMemoryPressure, corev1.NodePIDPressure} {
			if cluster.NodeCondition(&nodes[i], c) == corev1.ConditionTrue {
				n.Pressure = append(n.Pressure, string(c))
			}
		}
		out = append(out, n)
	}
	members, err := etcdStatus(ctx, env)
	if err != nil {
		errs = append(errs, err)
	}
	return out, members, errors.Join(errs...)
}

func etcdStatus(ctx context.Context, env *Env) ([]EtcdStatus, error) {
	via, err := env.Client.HealthyEtcdMember(ctx)
	if err != nil {
		return nil, err
	}
	e, err := env.Client.EtcdOn(ctx, via)
	if err != nil {
		return nil, err
	}
	list, err := e.Members(ctx)
	if err != nil {
		return nil, err
	}
	var members []EtcdStatus
	for _, m := range list {
		es := EtcdStatus{Name: m.Name, Learner: m.Learner}
		if len(m.ClientURLs) == 0 {
			es.Error = "not started"
			members = append(members, es)
			continue
		}
		es.Endpoint = m.ClientURLs[0]
		st, err := e.Status(ctx, es.Endpoint)
		if err != nil {
			es.Error = shortErr(err)
			members = append(members, es)
			continue
		}
		es.DBSize, es.Revision, es.Leader, es.Version = st.DBSize, st.Revision, st.Leader == m.ID, st.Version
		es.Healthy = !m.Learner
		if !m.Learner {
			if err := e.Health(ctx, es.Endpoint); err != nil {
				es.Healthy, es.Error = false, "health check failed: "+shortErr(err)
			}
		}
		members = append(members, es)
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	return members, nil
}
