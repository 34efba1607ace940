package phases

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
	"github.com/kubeforge/kubeforge/internal/statedir"
)

// etcdHost plays a host for the etcd phase: which peers listen, what the
// cluster answers, and what was run and written.
type etcdHost struct {
	hasData   bool
	listening []string // client URLs that accept connections
	etcd      fakeEtcd // the cluster its peers answer for
	ran       []string
	staged    map[string]string
	puts      map[string]string
	pending   io.Reader
}

// fakeEtcd is an etcd cluster: its members, and what was asked of it.
type fakeEtcd struct {
	members []cluster.Member
	addID   uint64 // the ID the next member added gets
	asked   []string
	stored  map[string][]byte // what Stored answers
}

func (f *fakeEtcd) Members(context.Context) ([]cluster.Member, error) {
	f.asked = append(f.asked, "list")
	return append([]cluster.Member(nil), f.members...), nil
}

func (f *fakeEtcd) AddLearner(_ context.Context, name, peerURL string) (cluster.Member, error) {
	f.asked = append(f.asked, "add "+name+" "+peerURL)
	m := cluster.Member{ID: f.addID, PeerURLs: []string{peerURL}, Learner: true}
	f.members = append(f.members, m)
	return m, nil
}

func (f *fakeEtcd) Promote(_ context.Context, id uint64) error {
	f.asked = append(f.asked, fmt.Sprintf("promote %x", id))
	return nil
}

func (f *fakeEtcd) Remove(_ context.Context, id uint64) error {
	f.asked = append(f.asked, fmt.Sprintf("remove %x", id))
	f.members = slices.DeleteFunc(f.members, func(m cluster.Member) bool { return m.ID == id })
	return nil
}

func (f *fakeEtcd) Health(context.Context, string) error { return nil }
func (f *fakeEtcd) Stored(context.Context, string, int) (map[string][]byte, error) {
	return f.stored, nil
}
func (f *fakeEtcd) Status(context.Context, string) (cluster.EtcdStatus, error) {
	return cluster.EtcdStatus{}, nil
}

func (e *etcdHost) Run(_ context.Context, cmd string, stdin io.Reader) (ssh.Result, error) {
	e.ran = append(e.ran, cmd)
	ok := ssh.Result{}
	switch {
	case strings.Contains(cmd, "/member/wal"): // the probe: data, then peers
		var out []string
		if e.hasData {
			out = append(out, "data=1")
		}
		for _, u := range e.listening {
			out = append(out, "listening="+u)
		}
		ok.Stdout = []byte(strings.Join(out, "\n"))
	case strings.Contains(cmd, "sha256sum <") && strings.Contains(cmd, "if [ -f"):
		ok.Stdout = []byte(strings.Repeat("-\n", strings.Count(cmd, "if [ -f")))
	case strings.HasPrefix(cmd, "systemctl is-active"):
		ok.Stdout = []byte("inactive\n")
	case strings.Contains(cmd, "install -m"):
		// Host.stage: the data of the last Put goes to a file beside
		// the target (the install's last word)...
		tmp := cmd[strings.LastIndex(cmd, " ")+1:]
		data, _ := io.ReadAll(e.pending)
		e.staged[strings.Trim(tmp, "'")] = string(data)
	case strings.HasPrefix(cmd, "set -e\nmv -f "):
		// ...and Host.commit renames the staged files into place.
		for _, line := range strings.Split(cmd, "\n")[1:] {
			if f := strings.Fields(line); len(f) == 4 {
				e.puts[strings.Trim(f[3], "'")] = e.staged[strings.Trim(f[2], "'")]
			}
		}
	}
	return ok, nil
}

func (e *etcdHost) Put(_ context.Context, r io.Reader, _ string) error {
	e.pending = r
	return nil
}
func (e *etcdHost) Close() error                                 { return nil }
func (e *etcdHost) Get(context.Context, string, io.Writer) error { return nil }

func etcdEnv(t *testing.T) *Env {
	t.Helper()
	c := parseCluster(t, `
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - {name: cp2, address: 192.0.2.12, roles: [control-plane]}`)
	spec, err := certs.SpecFromCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if _, err := certs.Generate(spec, certs.Dir(state), certs.Options{}); err != nil {
		t.Fatal(err)
	}
	return &Env{Cluster: c, StateDir: statedir.Dir(state), PKI: spec, Log: discardLog(), Out: io.Discard}
}

func TestEtcdMembership(t *testing.T) {
	env := etcdEnv(t)
	p := &etcdPhase{env: env}
	run := func(name string, e *etcdHost) error {
		e.puts, e.staged = map[string]string{}, map[string]string{}
		env.Client = cluster.New(cluster.Options{Cluster: env.Cluster,
			NewEtcd: func(context.Context, *host.Host, []string) (cluster.Etcd, error) { return &e.etcd, nil }})
		return p.Run(context.Background(), host.New(env.Cluster.Host(name), e))
	}
	ran := func(e *etcdHost, part string) bool {
		for _, c := range e.ran {
			if strings.Contains(c, part) {
				return true
			}
		}
		return false
	}
	asked := func(e *etcdHost, q string) bool { return slices.Contains(e.etcd.asked, q) }

	// The first member, nobody else listening: a new cluster of one.
	first := &etcdHost{}
	if err := run("cp1", first); err != nil {
		t.Fatal(err)
	}
	if env := first.puts[EtcdInitialClusterFile]; !strings.Contains(env, "ETCD_INITIAL_CLUSTER=cp1=https://192.0.2.11:2380\n") || !strings.Contains(env, "STATE=new") {
		t.Errorf("first member's initial cluster:\n%s", env)
	}
	if len(first.etcd.asked) > 0 {
		t.Errorf("the first member asked a cluster: %v", first.etcd.asked)
	}
	if unit := first.puts[UnitPath("etcd")]; strings.Contains(unit, "initial-cluster=") || !strings.Contains(unit, "EnvironmentFile=-"+EtcdInitialClusterFile) {
		t.Errorf("membership in the unit:\n%s", unit)
	}

	// The second: added as a learner through cp1, started, promoted.
	cp1 := cluster.Member{ID: 10, Name: "cp1", PeerURLs: []string{"https://192.0.2.11:2380"}}
	second := &etcdHost{
		listening: []string{"https://192.0.2.11:2379"},
		etcd:      fakeEtcd{members: []cluster.Member{cp1}, addID: 4096},
	}
	if err := run("cp2", second); err != nil {
		t.Fatal(err)
	}
	if !asked(second, "add cp2 https://192.0.2.12:2380") || !asked(second, "promote 1000") {
		t.Errorf("learner join: %v", second.etcd.asked)
	}
	if env := second.puts[EtcdInitialClusterFile]; !strings.Contains(env, "ETCD_INITIAL_CLUSTER=cp1=https://192.0.2.11:2380,cp2=https://192.0.2.12:2380\n") || !strings.Contains(env, "STATE=existing") {
		t.Errorf("second member's initial cluster:\n%s", env)
	}

	// A member whose host lost its data: removed, then added again.
	stale := &etcdHost{
		listening: []string{"https://192.0.2.11:2379"},
		etcd: fakeEtcd{members: []cluster.Member{cp1, {ID: 255, Name: "cp2", PeerURLs: []string{"https://192.0.2.12:2380"}}},
			addID: 4097},
	}
	if err := run("cp2", stale); err != nil {
		t.Fatal(err)
	}
	if !asked(stale, "remove ff") || !asked(stale, "add cp2 https://192.0.2.12:2380") {
		t.Errorf("stale member: %v", stale.etcd.asked)
	}

	// Data, but no longer a member: refused, nothing started.
	removed := &etcdHost{hasData: true, listening: stale.listening, etcd: fakeEtcd{members: []cluster.Member{cp1}}}
	if err := run("cp2", removed); err == nil || !strings.Contains(err.Error(), "was removed") {
		t.Errorf("a removed member with data: %v", err)
	}
	if ran(removed, "systemctl restart etcd") || slices.ContainsFunc(removed.etcd.asked, func(q string) bool { return strings.HasPrefix(q, "add") }) {
		t.Errorf("a removed member was started or added: %v %v", removed.ran, removed.etcd.asked)
	}

	// The second member before the first runs: it says which to start.
	early := &etcdHost{}
	if err := run("cp2", early); err == nil || !strings.Contains(err.Error(), "cp1") {
		t.Errorf("no member answers: %v", err)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
