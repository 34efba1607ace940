package phases

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
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
	// The user exists before the unit that names it starts: its
	// sysusers file written, then applied.
	sysusers := slices.IndexFunc(first.ran, func(c string) bool { return c == "systemd-sysusers "+EtcdSysusersFile })
	written := slices.IndexFunc(first.ran, func(c string) bool {
		return strings.HasPrefix(c, "set -e\nmv -f ") && strings.Contains(c, EtcdSysusersFile)
	})
	start := slices.IndexFunc(first.ran, func(c string) bool { return strings.HasPrefix(c, "systemctl restart etcd") })
	if written < 0 || sysusers < written || start < sysusers {
		t.Errorf("sysusers file written at %d, applied at %d, etcd started at %d:\n%s", written, sysusers, start, strings.Join(first.ran, "\n---\n"))
	}
	if first.puts[EtcdSysusersFile] == "" {
		t.Errorf("no %s written", EtcdSysusersFile)
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

// etcd runs as its own user etcd (CIS 1.1.12) and owns its 0700 data
// directory (1.1.11); it reads copies of its certificates and keys made
// for it at each start, while the files in /etc/kubernetes/pki stay
// root's 0600 (1.1.19, 1.1.21).
func TestEtcdRunsAsItsOwnUser(t *testing.T) {
	env := etcdEnv(t)
	d, err := (&etcdPhase{env: env}).desired(host.New(env.Cluster.Host("cp1"), nil))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(d.Services[0].Unit)
	service := map[string][]string{}
	for _, line := range strings.Split(unit[strings.Index(unit, "[Service]"):strings.Index(unit, "[Install]")], "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, " ") {
			service[k] = append(service[k], v)
		}
	}
	for k, want := range map[string]string{"User": EtcdUser, "Group": EtcdUser, "RuntimeDirectory": "etcd", "RuntimeDirectoryMode": "0700"} {
		if got := strings.Join(service[k], ","); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if slices.Contains(service["DynamicUser"], "yes") {
		t.Error("DynamicUser: the data directory would become a link")
	}
	pre := service["ExecStartPre"]
	for _, c := range pre {
		if !strings.HasPrefix(c, "+") {
			t.Errorf("ExecStartPre=%s runs as etcd: it must be root's (+)", c)
		}
	}
	for _, want := range []string{"+/bin/mkdir -p -m 0700 " + EtcdDataDir, "+/bin/chmod 0700 " + EtcdDataDir, "+/bin/chown -R etcd:etcd " + EtcdDataDir} {
		if !slices.Contains(pre, want) {
			t.Errorf("no ExecStartPre=%s in\n%s", want, unit)
		}
	}
	// Every file flag names a copy in EtcdTLSDir that the last
	// ExecStartPre makes, for etcd, from a file the phase writes.
	copies, ok := strings.CutPrefix(pre[len(pre)-1], "+/usr/bin/install -D -m 0400 -o etcd -g etcd -t "+EtcdTLSDir+" ")
	if !ok {
		t.Fatalf("the copies: %s", pre[len(pre)-1])
	}
	sources := strings.Fields(copies)
	written := map[string]File{}
	for _, f := range d.Files {
		written[f.Path] = f
	}
	flagFiles := 0
	for _, a := range strings.Fields(unit) {
		name, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasSuffix(name, "-file") {
			continue
		}
		flagFiles++
		src := pki("etcd/" + path.Base(v))
		if path.Dir(v) != EtcdTLSDir || !slices.Contains(sources, src) {
			t.Errorf("--%s=%s is not a copy of %s made before etcd starts", name, v, src)
		}
		if _, ok := written[src]; !ok {
			t.Errorf("--%s: the phase does not write %s", name, src)
		}
	}
	if flagFiles != 6 {
		t.Errorf("%d file flags, want 6 (CA, certificate and key, for clients and peers)", flagFiles)
	}
	for _, f := range d.Files {
		if strings.HasPrefix(f.Path, PKIDir) {
			want := host.FileMode{Perm: 0o644}
			if strings.HasSuffix(f.Path, ".key") {
				want.Perm = 0o600
			}
			if f.Mode != want {
				t.Errorf("%s: %+v, want root's %o", f.Path, f.Mode, want.Perm)
			}
		}
	}
	sysusers, ok := written[EtcdSysusersFile]
	if !ok || sysusers.Mode != (host.FileMode{Perm: 0o644}) ||
		!strings.HasSuffix(string(sysusers.Data), "\nu etcd - \"etcd (kubeforge)\" /var/lib/etcd\n") {
		t.Errorf("sysusers file %+v:\n%s", sysusers.Mode, sysusers.Data)
	}
	if slices.Contains(d.Services[0].Inputs, EtcdSysusersFile) {
		t.Error("a change of the sysusers file restarts etcd")
	}

	// A converged host changes nothing (owners compared too); a key
	// someone gave etcd in place is root's again.
	var same strings.Builder
	for _, f := range d.allFiles() {
		fmt.Fprintf(&same, "%s %o root:root\n", host.SumOf(f.Data), f.Mode.Perm)
	}
	for name, tc := range map[string]struct{ states, want string }{
		"converged": {same.String(), ""},
		"key given to etcd": {strings.Replace(same.String(), "600 root:root", "600 etcd:etcd", 1),
			"write " + pki("etcd/server.key") + ",reload etcd"},
	} {
		c, err := d.Diff(context.Background(), host.New(env.Cluster.Host("cp1"), &scriptedHost{states: tc.states, active: "active\n"}))
		if got := strings.Join(c.Lines(), ","); err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", name, got, err, tc.want)
		}
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A restore leaves the new data directory, which etcdutl writes as root,
// to etcd; the user is made first (a cluster from before it had one).
func TestSnapshotRestoreGivesEtcdItsData(t *testing.T) {
	env := etcdEnv(t)
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(snap, []byte("snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := NewSnapshotRestore(env, snap, "20260101T000000Z")
	if err := p.(Preparer).Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	e := &etcdHost{puts: map[string]string{}, staged: map[string]string{}}
	if err := p.Run(ctx, host.New(env.Cluster.Host("cp1"), e)); err != nil {
		t.Fatal(err)
	}
	sysusers := slices.Index(e.ran, "systemd-sysusers "+EtcdSysusersFile)
	restore := slices.IndexFunc(e.ran, func(c string) bool { return strings.Contains(c, " snapshot restore ") })
	if e.puts[EtcdSysusersFile] == "" || sysusers < 0 || restore < sysusers {
		t.Fatalf("sysusers file %q, applied at %d, restore at %d", e.puts[EtcdSysusersFile], sysusers, restore)
	}
	script := e.ran[restore]
	if i, j := strings.Index(script, " snapshot restore "), strings.Index(script, "\nchown -R etcd:etcd "+EtcdDataDir+"\n"); j < i {
		t.Errorf("the restored data directory is not given to etcd:\n%s", script)
	}
}

// A renewal's new etcd certificates reach the copies a running etcd reads
// (it reads them again at each handshake): the certificates are inputs
// that reload etcd, not restart it, and its reload renames each fresh
// copy into place whole.
func TestEtcdReloadRefreshesCopies(t *testing.T) {
	env := etcdEnv(t)
	p := &etcdPhase{env: env}
	d, err := p.desired(host.New(env.Cluster.Host("cp1"), &etcdHost{}))
	if err != nil {
		t.Fatal(err)
	}
	svc := d.Services[0]
	if !svc.Reload || !slices.Contains(svc.Inputs, pki("etcd/server.key")) {
		t.Fatalf("etcd: reload %v, inputs %v", svc.Reload, svc.Inputs)
	}
	unit := string(svc.Unit)
	for _, f := range etcdTLSFiles {
		want := "/usr/bin/install -m 0400 -o etcd -g etcd /etc/kubernetes/pki/etcd/" + f + " /run/etcd/." + f + ".new && /bin/mv -f /run/etcd/." + f + ".new /run/etcd/" + f
		if !strings.Contains(unit, want) {
			t.Errorf("ExecReload lacks %q:\n%s", want, unit)
		}
	}
	if !strings.Contains(unit, "ExecReload=+/bin/sh -c '") {
		t.Errorf("the reload does not run as root:\n%s", unit)
	}
}
