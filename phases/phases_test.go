package phases

import (
	"context"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/bootstraptoken"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
	"github.com/kubeforge/kubeforge/internal/statedir"
)

func testCluster(t *testing.T) *config.Cluster {
	return parseCluster(t, `
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - {name: w1, address: 192.0.2.12, roles: [worker]}`)
}

// parseCluster is a cluster "t" of these spec.hosts entries.
func parseCluster(t *testing.T, hosts string) *config.Cluster {
	t.Helper()
	c, _, err := config.Parse("test", []byte("apiVersion: kubeforge.io/v1alpha1\nkind: Cluster\nmetadata: {name: t}\nspec:\n  hosts:"+hosts+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKubeletConfig(t *testing.T) {
	c := testCluster(t)
	p := &kubeletPhase{env: &Env{Cluster: c, Client: cluster.New(cluster.Options{Cluster: c, Admin: true})}}
	for _, tc := range []struct {
		host    string
		cgroup  int
		tainted bool
	}{{"cp1", 1, true}, {"w1", 2, false}} {
		h := host.New(c.Host(tc.host), nil)
		data, err := p.kubeletConfig(h, nodeState{facts: &host.Facts{CgroupVersion: tc.cgroup}, resolvConf: "/etc/resolv.conf"})
		if err != nil {
			t.Fatal(err)
		}
		var cfg kubeletv1beta1.KubeletConfiguration
		if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
			t.Fatalf("%s: %v\n%s", tc.host, err, data)
		}
		if cfg.Kind != "KubeletConfiguration" || cfg.CgroupDriver != "systemd" || !cfg.ServerTLSBootstrap || !cfg.RotateCertificates ||
			len(cfg.ClusterDNS) != 1 || cfg.ClusterDNS[0] != "10.96.0.10" || *cfg.Authentication.Anonymous.Enabled {
			t.Errorf("%s: %+v", tc.host, cfg)
		}
		if (cfg.FailCgroupV1 != nil && !*cfg.FailCgroupV1) != (tc.cgroup == 1) {
			t.Errorf("%s: failCgroupV1 %v on cgroup v%d", tc.host, cfg.FailCgroupV1, tc.cgroup)
		}
		if (len(cfg.RegisterWithTaints) == 1) != tc.tainted {
			t.Errorf("%s: taints %v", tc.host, cfg.RegisterWithTaints)
		}
	}
}

// A node joining on its own, without admin rights, asks for a serving
// certificate from the cluster CA too (an admin approves it): the API
// servers accept no other (--kubelet-certificate-authority).
func TestKubeletConfigWithoutAdmin(t *testing.T) {
	c := testCluster(t)
	p := &kubeletPhase{env: &Env{Cluster: c}}
	h := host.New(c.Host("w1"), nil)
	data, err := p.kubeletConfig(h, nodeState{facts: &host.Facts{CgroupVersion: 2}, resolvConf: "/etc/resolv.conf"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil || !cfg.ServerTLSBootstrap || !cfg.RotateCertificates {
		t.Errorf("serverTLSBootstrap %v rotate %v: %v", cfg.ServerTLSBootstrap, cfg.RotateCertificates, err)
	}
	on, why := (&kubeletFinalizePhase{env: p.env}).Enabled()
	if on || !strings.Contains(why, "approval") {
		t.Errorf("kubelet-finalize without admin rights: %v %q", on, why)
	}
}

func TestClusterDNSAndToken(t *testing.T) {
	c := testCluster(t)
	if got := ClusterDNS(c).String(); got != "10.96.0.10" {
		t.Errorf("cluster DNS %s", got)
	}
	dir := statedir.Dir(t.TempDir())
	now := time.Now()
	if tok, err := PeekToken(dir, now); err != nil || !validToken(tok.String()) {
		t.Fatalf("peek: %v %v", tok, err)
	}
	if _, err := os.Stat(dir.Token()); !os.IsNotExist(err) {
		t.Fatal("PeekToken wrote a token")
	}
	a, err := LoadOrCreateToken(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadOrCreateToken(dir, now.Add(time.Hour))
	if a != b {
		t.Errorf("the saved token was not reused: %v %v", a, b)
	}
	c2, _ := LoadOrCreateToken(dir, now.Add(23*time.Hour+30*time.Minute))
	if c2 == a {
		t.Error("a token with less than an hour left was reused")
	}
	if fi, _ := os.Stat(dir.Token()); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", fi.Mode().Perm())
	}
}

// scriptedHost answers a Desired's two round trips.
type scriptedHost struct {
	states string // FileStates answer
	active string // systemctl is-active answer
	ran    []string
}

func (s *scriptedHost) Run(_ context.Context, cmd string, _ io.Reader) (ssh.Result, error) {
	s.ran = append(s.ran, cmd)
	switch {
	case strings.Contains(cmd, "sha256sum"):
		return ssh.Result{Stdout: []byte(s.states)}, nil
	case strings.HasPrefix(cmd, "systemctl is-active"):
		return ssh.Result{Stdout: []byte(s.active)}, nil
	}
	return ssh.Result{}, nil
}
func (s *scriptedHost) Put(context.Context, io.Reader, string) error { return nil }
func (s *scriptedHost) Get(context.Context, string, io.Writer) error { return nil }
func (s *scriptedHost) Close() error                                 { return nil }

func TestDesiredDiff(t *testing.T) {
	cfg := []byte("config")
	unit := []byte("unit")
	d := Desired{
		Files:    []File{{Path: "/etc/a.conf", Data: cfg, Mode: host.FileMode{Perm: 0o644}}},
		Services: []Service{{Name: "a", Unit: unit, Inputs: []string{"/etc/a.conf"}}, {Name: "b", Unit: unit}},
	}
	same := host.SumOf(cfg) + " 644 root:root\n" + host.SumOf(unit) + " 600 root:root\n" + host.SumOf(unit) + " 600 root:root\n"
	for name, tc := range map[string]struct {
		states, active string
		want           string
	}{
		"up to date":     {same, "active\nactive\n", ""},
		"config changed": {"- \n" + same[strings.Index(same, "\n")+1:], "active\nactive\n", "write /etc/a.conf,restart a"},
		"b stopped":      {same, "active\ninactive\n", "start b"},
		"nothing there":  {"-\n-\n-\n", "inactive\ninactive\n", "write /etc/a.conf,write /etc/systemd/system/a.service,write /etc/systemd/system/b.service,restart a,restart b"},
	} {
		s := &scriptedHost{states: tc.states, active: tc.active}
		h := host.New(&config.Host{Name: "h"}, s)
		c, err := d.Diff(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Lines(), ","); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
	// A reloadable service re-reads a changed input without a restart,
	// unless its unit changed or it is not running.
	r := Desired{Files: d.Files, Services: []Service{{Name: "r", Inputs: []string{"/etc/a.conf"}, Reload: true}}}
	for name, tc := range map[string]struct{ active, want string }{
		"running": {"active\n", "write /etc/a.conf,reload r"},
		"stopped": {"inactive\n", "write /etc/a.conf,restart r"},
	} {
		h := host.New(&config.Host{Name: "h"}, &scriptedHost{states: "-\n", active: tc.active})
		c, err := r.Diff(context.Background(), h)
		if err != nil || strings.Join(c.Lines(), ",") != tc.want {
			t.Errorf("reload, %s: %v %v, want %s", name, c.Lines(), err, tc.want)
		}
	}
	// An input written by an earlier Desired of the phase restarts too.
	h := host.New(&config.Host{Name: "h"}, &scriptedHost{states: same, active: "active\nactive\n"})
	c, err := d.Diff(context.Background(), h, "/etc/a.conf")
	if err != nil || strings.Join(c.Lines(), ",") != "restart a" {
		t.Errorf("changed before: %v %v", c.Lines(), err)
	}
}

func TestInstallLinks(t *testing.T) {
	p := &installPhase{env: &Env{Bundle: &bundle.Manifest{Files: []bundle.File{
		{Path: "bin/kube", Programs: []bundle.Program{{Name: "kubelet"}, {Name: "etcd"}}},
		{Path: "bin/flanneld", Programs: []bundle.Program{{Name: "flanneld"}}},
		{Path: "cni/bin/bridge", Programs: []bundle.Program{{Name: "cni-bridge"}}},
		{Path: "bin/crictl", Programs: []bundle.Program{{Name: "crictl"}}},
		// Run from the bundle by their units, never on PATH.
		{Path: "bin/containerd", Programs: []bundle.Program{{Name: "containerd"}}},
		{Path: "bin/runc", Programs: []bundle.Program{{Name: "runc"}}},
		{Path: "bin/ctr", Programs: []bundle.Program{{Name: "ctr"}}},
		{Path: "bin/keepalived", Programs: []bundle.Program{{Name: "keepalived"}}},
	}}}}
	links := p.links()
	want := map[string]string{
		"/usr/local/bin/kube":     "/opt/kubeforge/current/bin/kube",
		"/usr/local/bin/kubelet":  "kube",
		"/usr/local/bin/etcd":     "kube",
		"/usr/local/bin/flanneld": "/opt/kubeforge/current/bin/flanneld",
		"/opt/cni/bin/bridge":     "/opt/kubeforge/current/cni/bin/bridge",
		"/usr/local/bin/crictl":   "/opt/kubeforge/current/bin/crictl",
	}
	if len(links) != len(want) {
		t.Fatalf("links %v", links)
	}
	for l, target := range want {
		if links[l] != target {
			t.Errorf("%s -> %s, want %s", l, links[l], target)
		}
	}
}

// probeHost answers the preflight probe.
type probeHost struct{ out string }

func (p probeHost) Run(context.Context, string, io.Reader) (ssh.Result, error) {
	return ssh.Result{Stdout: []byte(p.out)}, nil
}
func (probeHost) Put(context.Context, io.Reader, string) error { return nil }
func (probeHost) Get(context.Context, string, io.Writer) error { return nil }
func (probeHost) Close() error                                 { return nil }

func TestPreflight(t *testing.T) {
	c := testCluster(t)
	ok := "module=br_netfilter ok\nmodule=overlay ok\nmodule=ip_vs missing\nsysctl=ip_forward\n"
	facts := &host.Facts{CPUs: 2, MemoryBytes: 4 << 30, CgroupVersion: 2}
	for name, tc := range map[string]struct {
		probe  string
		swap   int64
		ignore []string
		want   string // "" passes
	}{
		"clean":              {probe: ok},
		"our own apiserver":  {probe: ok + `listen=*:6443 users:(("kube-apiserver",pid=12,fd=3))` + "\n"},
		"port taken":         {probe: ok + `listen=0.0.0.0:6443 users:(("nginx",pid=77,fd=6))` + "\n", want: "[Port-6443] port 6443 is in use by nginx (pid 77)"},
		"swap":               {probe: ok, swap: 1 << 30, want: "[Swap] swap is on (1024 MiB)"},
		"swap ignored":       {probe: ok, swap: 1 << 30, ignore: []string{"Swap"}},
		"everything ignored": {probe: "sysctl=ip_forward\n", swap: 1, ignore: []string{"all"}},
		"no br_netfilter":    {probe: "module=overlay ok\nsysctl=ip_forward\n", want: "[KernelModules] kernel module br_netfilter"},
		"no forwarding":      {probe: "module=br_netfilter ok\nmodule=overlay ok\n", want: "[Sysctl]"},
	} {
		var out strings.Builder
		p := &preflightPhase{env: &Env{Cluster: c, Out: &out, IgnorePreflight: tc.ignore}}
		h := host.New(c.Host("cp1"), probeHost{out: tc.probe})
		f := *facts
		f.SwapBytes = tc.swap
		h.SetFacts(&f)
		err := p.Run(context.Background(), h)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--ignore-preflight-errors")):
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// routedHost answers each command with the reply of the first key it
// contains.
type routedHost struct {
	replies [][2]string
	ran     *[]string
}

func (r routedHost) Run(_ context.Context, cmd string, _ io.Reader) (ssh.Result, error) {
	*r.ran = append(*r.ran, cmd)
	for _, kv := range r.replies {
		if strings.Contains(cmd, kv[0]) {
			return ssh.Result{Stdout: []byte(kv[1])}, nil
		}
	}
	return ssh.Result{}, nil
}
func (routedHost) Put(context.Context, io.Reader, string) error { return nil }
func (routedHost) Get(context.Context, string, io.Writer) error { return nil }
func (routedHost) Close() error                                 { return nil }

// A host without iptables: installed from a mirror it reaches; refused,
// before anything is changed, when it reaches none.
func TestPreflightBaseTools(t *testing.T) {
	c := testCluster(t)
	probe := "module=br_netfilter ok\nmodule=overlay ok\nsysctl=ip_forward\n"
	sources := "source=http://deb.debian.org/debian\n"
	for name, tc := range map[string]struct {
		reach, want, say string
	}{
		"mirror reached": {reach: "ok\n", say: "lacks iptables (package iptables): installs it with apt"},
		"air-gapped":     {reach: "", want: "[Packages] it lacks iptables (package iptables), and its package manager reaches no package mirror (no answer from deb.debian.org:80)"},
	} {
		var out strings.Builder
		var ran []string
		p := &preflightPhase{env: &Env{Cluster: c, Out: &out}}
		h := host.New(c.Host("cp1"), routedHost{ran: &ran, replies: [][2]string{
			{"/dev/tcp/", tc.reach}, {"sources.list", sources}, {"module=", probe}}})
		h.SetFacts(&host.Facts{CPUs: 2, MemoryBytes: 4 << 30, CgroupVersion: 2, PackageManager: "apt", MissingTools: []string{"iptables"}})
		err := p.Run(context.Background(), h)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if !strings.Contains(out.String(), tc.say) {
			t.Errorf("%s: printed %q, want %q", name, out.String(), tc.say)
		}
		for _, cmd := range ran {
			if strings.Contains(cmd, "apt-get install") || strings.Contains(cmd, "cat >") {
				t.Errorf("%s: preflight changed the host: %s", name, cmd)
			}
		}
	}
}

// A node of a cluster made on the OS's containerd keeps it; a new host,
// even with the OS's containerd installed, gets the bundle's.
func TestRuntimeChoice(t *testing.T) {
	osUnit := "/lib/systemd/system/containerd.service"
	for _, tc := range []struct {
		f   host.Facts
		os  bool
		ctr string
	}{
		{host.Facts{}, false, "/opt/kubeforge/current/bin/ctr"},
		{host.Facts{Containerd: "1.6.20", ContainerdUnit: osUnit}, false, "/opt/kubeforge/current/bin/ctr"},
		{host.Facts{Containerd: "1.6.20", ContainerdUnit: osUnit, KubeletConfigured: true}, true, "ctr"},
		{host.Facts{Containerd: "1.6.20", ContainerdUnit: UnitPath("containerd"), KubeletConfigured: true}, false, "/opt/kubeforge/current/bin/ctr"},
	} {
		if got := usesOSContainerd(&tc.f); got != tc.os {
			t.Errorf("%+v: OS containerd %v, want %v", tc.f, got, tc.os)
		}
		if got := ctr(&tc.f); got != tc.ctr {
			t.Errorf("%+v: ctr %s, want %s", tc.f, got, tc.ctr)
		}
	}
	env := &Env{Bundle: &bundle.Manifest{
		Files:  []bundle.File{{Path: "bin/containerd", Programs: []bundle.Program{{Name: "containerd", Version: "v2.4.2"}}}},
		Images: []bundle.Image{{Name: "pause", Ref: "kubeforge.local/pause:3.10"}},
	}}
	p := &runtimePhase{env: env}
	d, err := p.desired(&host.Facts{}, hostQuirks{})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Services[0]; !strings.Contains(string(s.Unit), "ExecStart=/opt/kubeforge/current/bin/containerd") {
		t.Errorf("the bundle's containerd runs from its own unit: %s", s.Unit)
	}
	d, err = p.desired(&host.Facts{Containerd: "1.6.20", ContainerdUnit: osUnit, KubeletConfigured: true}, hostQuirks{})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Services[0]; s.Unit != nil || !strings.Contains(string(d.Files[2].Data), "version = 2") {
		t.Errorf("the OS's containerd keeps its unit and a 1.x configuration: %s", d.Files[2].Data)
	}
	// Drained in an upgrade, the same node moves to the bundle's.
	p.switchOS = true
	d, err = p.desired(&host.Facts{Containerd: "1.6.20", ContainerdUnit: osUnit, KubeletConfigured: true}, hostQuirks{})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Services[0]; !strings.Contains(string(s.Unit), "ExecStart=/opt/kubeforge/current/bin/containerd") || !strings.Contains(string(d.Files[2].Data), "version = 4") {
		t.Errorf("an upgrade's drained node moves to the bundle's containerd: %s\n%s", s.Unit, d.Files[2].Data)
	}
}

func validToken(s string) bool {
	_, err := bootstraptoken.Parse(s)
	return err == nil
}

func TestVIPDesired(t *testing.T) {
	c, _, err := config.Parse("test", []byte(`apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: t}
spec:
  controlPlane: {vip: 192.0.2.100}
  hosts:
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - {name: cp2, address: 192.0.2.12, roles: [control-plane]}
    - {name: cp3, address: 192.0.2.13, roles: [control-plane]}
    - {name: w1, address: 192.0.2.21, roles: [worker]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := &vipPhase{env: &Env{Cluster: c}}
	if on, _ := p.Enabled(); !on {
		t.Fatal("a cluster with a VIP has the vip phase off")
	}
	h := host.New(c.Host("cp2"), nil)
	h.SetFacts(&host.Facts{Addresses: map[string][]netip.Prefix{"ens3": {netip.MustParsePrefix("192.0.2.12/24")}}})
	d, err := p.desired(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(d.Files[0].Data)
	for _, want := range []string{"interface ens3", "priority 199", "nopreempt", "unicast_src_ip 192.0.2.12", "192.0.2.11\n", "192.0.2.13\n", "192.0.2.100/32 dev ens3"} {
		if !strings.Contains(conf, want) {
			t.Errorf("keepalived.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "        192.0.2.12\n") || strings.Contains(conf, "192.0.2.21") {
		t.Errorf("peers list the host itself or a worker:\n%s", conf)
	}
	if s := d.Services[0]; s.Name != "keepalived" || !s.Reload || !strings.Contains(string(s.Unit), "ip addr del 192.0.2.100/32 dev ens3") {
		t.Errorf("service %+v", s)
	}
	if vipPriority(c, c.Host("cp1")) <= vipPriority(c, c.Host("cp3")) {
		t.Error("the first control plane is not preferred")
	}
	c.Spec.ControlPlane.VIP = ""
	if on, why := p.Enabled(); on || !strings.Contains(why, "vip") {
		t.Errorf("no VIP: enabled %v (%s)", on, why)
	}
}
