package phases

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
)

// bundleHost answers the bundle phases state probe with state, the
// uploads file state probe with "missing", and records the rest.
type bundleHost struct {
	state    string
	ran      []string
	puts     int
	streamed string // what the unpack command read on its stdin
}

func (b *bundleHost) Run(_ context.Context, cmd string, stdin io.Reader) (ssh.Result, error) {
	b.ran = append(b.ran, cmd)
	if strings.Contains(cmd, " --check ") {
		in, _ := io.ReadAll(stdin)
		b.streamed = string(in)
	}
	switch {
	case strings.HasPrefix(cmd, "complete="):
		return ssh.Result{Stdout: []byte(b.state)}, nil
	case strings.HasPrefix(cmd, "if [ -f"):
		return ssh.Result{Stdout: []byte("-\n")}, nil
	}
	return ssh.Result{}, nil
}
func (b *bundleHost) Put(context.Context, io.Reader, string) error { b.puts++; return nil }
func (*bundleHost) Get(context.Context, string, io.Writer) error   { return nil }
func (*bundleHost) Close() error                                   { return nil }

// installed is every command that put a file in place (host.stage).
func (b *bundleHost) installed() []string {
	var out []string
	for _, cmd := range b.ran {
		if i := strings.Index(cmd, "\ninstall -m "); i >= 0 {
			f := strings.Fields(cmd[i+1:])
			// The staged copy: .NAME.kubeforge-RANDOM
			name, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(f[len(f)-1]), "."), ".kubeforge-")
			out = append(out, f[2]+" "+name)
		}
	}
	return out
}

func bundleEnv(t *testing.T, archive string, withUnpacker bool) *Env {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, archive), []byte("archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &bundle.Manifest{Archive: archive, Files: []bundle.File{{Path: "bin/kube", SHA256: "ab"}}}
	if withUnpacker {
		os.WriteFile(filepath.Join(dir, "kube-unpack"), []byte("unpacker"), 0o755)
		sum, size, _ := bundle.HashFile(filepath.Join(dir, "kube-unpack"))
		m.Unpacker = &bundle.Unpacker{Path: "kube-unpack", SHA256: sum, Size: size}
	}
	return &Env{Bundle: m, BundleDir: dir}
}

func TestBundleUnpacker(t *testing.T) {
	self := selfExecutable
	selfExecutable = func() (string, error) { return "/root/kubeforge", nil }
	defer func() { selfExecutable = self }()
	const zst, gz = "kubeforge-bundle-v1-linux-amd64.tar.zst", "kubeforge-bundle-v1-linux-amd64.tar.gz"
	const stream, kubeUnpack = "stream ", "/var/lib/kubeforge/bundle/kube-unpack -C /opt/kubeforge/"
	for name, tc := range map[string]struct {
		archive  string
		local    bool
		unpacker string // the state probes unpacker line
		plan     []string
		install  []string // files uploaded, "mode name"
		extract  string
	}{
		"zstd over ssh": {
			archive: zst,
			plan:    []string{"upload the unpacker kube-unpack", stream + zst},
			install: []string{"755 kube-unpack", "644 SUM16.sha256sums"},
			extract: kubeUnpack,
		},
		"zstd, the host has this unpacker": {
			archive:  zst,
			unpacker: "unpacker=SUM 755 root:root\n",
			plan:     []string{stream + zst},
			install:  []string{"644 SUM16.sha256sums"},
			extract:  kubeUnpack,
		},
		"zstd, the host has another unpacker": {
			archive:  zst,
			unpacker: "unpacker=0123 755 root:root\n",
			plan:     []string{"upload the unpacker kube-unpack", stream + zst},
			install:  []string{"755 kube-unpack", "644 SUM16.sha256sums"},
			extract:  kubeUnpack,
		},
		"zstd on this machine": {
			archive: zst, local: true,
			plan:    []string{stream + zst},
			install: []string{"644 SUM16.sha256sums"},
			extract: "/root/kubeforge bundle unpack -C /opt/kubeforge/",
		},
		"gzip over ssh": {
			archive: gz,
			plan:    []string{"upload the unpacker kube-unpack", stream + gz},
			install: []string{"755 kube-unpack", "644 SUM16.sha256sums"},
			extract: kubeUnpack,
		},
	} {
		env := bundleEnv(t, tc.archive, true)
		p := &bundlePhase{env: env}
		if err := p.Prepare(context.Background()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		state := strings.ReplaceAll(tc.unpacker, "SUM", env.Bundle.Unpacker.SHA256)
		spec := &config.Host{Name: "h", Local: tc.local}
		fake := &bundleHost{state: "complete=\ncurrent=\n" + state}
		h := host.New(spec, fake)
		plan, err := p.Plan(context.Background(), h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(plan) != len(tc.plan)+1 {
			t.Errorf("%s: plan %q, want %q and the link", name, plan, tc.plan)
		}
		for i, want := range tc.plan {
			if i >= len(plan) || !strings.HasPrefix(plan[i], want) {
				t.Errorf("%s: plan %q, want %q", name, plan, tc.plan)
				break
			}
		}
		probe := fake.ran[0]
		if strings.Contains(probe, "kube-unpack") != !tc.local {
			t.Errorf("%s: the probe asks for kube-unpack: %v", name, !strings.Contains(probe, "kube-unpack"))
		}
		fake.ran = nil
		if err := p.Run(context.Background(), h); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := strings.ReplaceAll(strings.Join(tc.install, ","), "SUM16", p.sum[:16])
		if got := fake.installed(); strings.Join(got, ",") != want {
			t.Errorf("%s: uploaded %q, want %q", name, got, want)
		}
		var unpack string
		for _, cmd := range fake.ran {
			if strings.Contains(cmd, " --check ") {
				unpack = cmd
			}
		}
		check := " --sha256 " + p.sum + " --check /var/lib/kubeforge/bundle/" + p.sum[:16] + ".sha256sums"
		if !strings.Contains(unpack, tc.extract) || !strings.Contains(unpack, check) || !strings.Contains(unpack, "mv -T") {
			t.Errorf("%s: unpacked with\n%s\nwant %q and %q", name, unpack, tc.extract, check)
		}
		if strings.Contains(unpack, "tar -x") || strings.Contains(unpack, "sha256sum -c") {
			t.Errorf("%s: the host reads the bundle twice:\n%s", name, unpack)
		}
		if fake.streamed != "archive" {
			t.Errorf("%s: the unpack read %q on its stdin, want the archive", name, fake.streamed)
		}
	}
}

// Without kube-unpack beside a zstd archive, a host over SSH is refused,
// with what to do, before the archive is uploaded; this machine needs none.
func TestBundleUnpackerMissing(t *testing.T) {
	env := bundleEnv(t, "kubeforge-bundle-v1-linux-amd64.tar.zst", true)
	os.Remove(filepath.Join(env.BundleDir, "kube-unpack"))
	p := &bundlePhase{env: env}
	if err := p.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	fake := &bundleHost{state: "complete=\ncurrent=\n"}
	err := p.Run(context.Background(), host.New(&config.Host{Name: "h"}, fake))
	if err == nil || !strings.Contains(err.Error(), "copy kube-unpack") {
		t.Errorf("%v", err)
	}
	if fake.puts != 0 {
		t.Errorf("uploaded %d files before refusing", fake.puts)
	}
	if _, err := p.Plan(context.Background(), host.New(&config.Host{Name: "h"}, fake)); err == nil {
		t.Error("the dry run plans an unpack it cannot do")
	}
	local := &bundleHost{state: "complete=\ncurrent=\n"}
	if err := p.Run(context.Background(), host.New(&config.Host{Name: "h", Local: true}, local)); err != nil {
		t.Errorf("this machine: %v", err)
	}
	env.Bundle.Unpacker = nil
	if err := p.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), host.New(&config.Host{Name: "h"}, fake)); err == nil || !strings.Contains(err.Error(), "make bundle") {
		t.Errorf("no unpacker in the manifest: %v", err)
	}
}

// The switch keeps the bundle it points at and the one it replaces, and
// removes the other unpacked bundles (only directories named by 16 hex
// digits) with their lists of sums; run by the host's sh.
func TestBundleSwitchKeepsThePrevious(t *testing.T) {
	root, sums := t.TempDir(), t.TempDir()
	p := &bundlePhase{sum: "cccccccccccccccc0000"}
	script := strings.NewReplacer(BundleRoot, root, BundleArchiveDir, sums).Replace(p.switchScript())
	for _, d := range []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc", "dddddddddddddddd.unpacking", "keep-me"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sums, d+".sha256sums"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(sums, "archives"), 0o755)
	for _, d := range []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"} {
		if err := os.WriteFile(filepath.Join(sums, "archives", d+".tar.zst"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "bbbbbbbbbbbbbbbb"), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s\n%s", err, out, script)
	}
	if got, _ := os.Readlink(filepath.Join(root, "current")); got != filepath.Join(root, "cccccccccccccccc") {
		t.Errorf("current -> %s", got)
	}
	ls := func(dir string) string {
		es, _ := os.ReadDir(dir)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return strings.Join(names, " ")
	}
	if got, want := ls(root), "bbbbbbbbbbbbbbbb cccccccccccccccc current dddddddddddddddd.unpacking keep-me"; got != want {
		t.Errorf("left %s, want %s", got, want)
	}
	if got := ls(sums); strings.Contains(got, "aaaa") || !strings.Contains(got, "bbbb") {
		t.Errorf("sums left: %s", got)
	}
	if got, want := ls(filepath.Join(sums, "archives")), "bbbbbbbbbbbbbbbb.tar.zst cccccccccccccccc.tar.zst"; got != want {
		t.Errorf("kept archives left: %s, want %s", got, want)
	}
}

// Workers joining together are spread over the control planes.
func TestBundlePeersInTurn(t *testing.T) {
	var hosts []config.Host
	for _, n := range []string{"cp1", "cp2", "cp3"} {
		hosts = append(hosts, config.Host{Name: n, Address: "10.0.0.1", Roles: []config.Role{config.RoleControlPlane}})
	}
	for _, n := range []string{"w1", "w2", "w3", "w4"} {
		hosts = append(hosts, config.Host{Name: n, Address: "10.0.0.2", Roles: []config.Role{config.RoleWorker}})
	}
	env := &Env{Cluster: &config.Cluster{Spec: config.Spec{Hosts: hosts}}, Targets: []string{"w1", "w2", "w3", "w4"},
		Connect: func(context.Context, *config.Host) (*host.Host, error) { return nil, nil }}
	p := &bundlePhase{env: env}
	var got []string
	for _, w := range env.Targets {
		got = append(got, w+":"+hostNames(p.peers(host.New(env.Cluster.Host(w), nil))))
	}
	want := "w1:cp1, cp2, cp3 w2:cp2, cp3, cp1 w3:cp3, cp1, cp2 w4:cp1, cp2, cp3"
	if strings.Join(got, " ") != want {
		t.Errorf("peers %q, want %q", strings.Join(got, " "), want)
	}
}

// serveHost is a control plane for the peer path: -serve answers
// serveOut (or fails), and the rest succeeds.
type serveHost struct {
	serveOut string
	ran      []string
	token    string
}

func (s *serveHost) Run(_ context.Context, cmd string, stdin io.Reader) (ssh.Result, error) {
	s.ran = append(s.ran, cmd)
	if strings.Contains(cmd, " -serve ") {
		in, _ := io.ReadAll(stdin)
		s.token = string(in)
		if s.serveOut == "" {
			return ssh.Result{ExitCode: 1, Stderr: []byte("kube-unpack: stat: no such file")}, nil
		}
		return ssh.Result{Stdout: []byte(s.serveOut)}, nil
	}
	return ssh.Result{}, nil
}
func (*serveHost) Put(context.Context, io.Reader, string) error { return nil }
func (*serveHost) Get(context.Context, string, io.Writer) error { return nil }
func (*serveHost) Close() error                                 { return nil }

// A join fetches the archive from a control plane the run does not
// touch (one token to both, the address the control plane listens on);
// a control plane it joins keeps a copy; when no control plane can
// serve it, this machine streams it. Init has no peer.
func TestBundleFromPeer(t *testing.T) {
	for name, tc := range map[string]struct {
		serveOut string
		role     config.Role
		targets  []string
		fromPeer bool
	}{
		"worker join, from lab1":        {serveOut: "43210 777\n", role: config.RoleWorker, targets: []string{"lab4"}, fromPeer: true},
		"control plane join, from lab1": {serveOut: "43210 777\n", role: config.RoleControlPlane, targets: []string{"lab4"}, fromPeer: true},
		"lab1 has no archive":           {role: config.RoleWorker, targets: []string{"lab4"}},
		"lab1 prints nonsense":          {serveOut: "ready\n", role: config.RoleWorker, targets: []string{"lab4"}},
		"init":                          {serveOut: "43210 777\n", role: config.RoleWorker},
	} {
		env := bundleEnv(t, "kubeforge-bundle-v1-linux-amd64.tar.zst", true)
		env.Log = slog.New(slog.DiscardHandler)
		lab1 := &config.Host{Name: "lab1", Address: "10.0.0.1", Roles: []config.Role{config.RoleControlPlane}}
		lab4 := &config.Host{Name: "lab4", Address: "10.0.0.4", Roles: []config.Role{tc.role}}
		env.Cluster = &config.Cluster{Spec: config.Spec{Hosts: []config.Host{*lab1, *lab4}}}
		env.Targets = tc.targets
		src := &serveHost{serveOut: tc.serveOut}
		env.Connect = func(_ context.Context, spec *config.Host) (*host.Host, error) {
			if spec.Name != "lab1" {
				t.Fatalf("%s: connected to %s", name, spec.Name)
			}
			return host.New(spec, src), nil
		}
		p := &bundlePhase{env: env}
		if err := p.Prepare(context.Background()); err != nil {
			t.Fatal(err)
		}
		fake := &bundleHost{state: "complete=\ncurrent=\n"}
		h := host.New(lab4, fake)
		plan, err := p.Plan(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(strings.Join(plan, "\n"), "from a control plane that keeps it (lab1)"); got != (tc.targets != nil) {
			t.Errorf("%s: plan %q", name, plan)
		}
		fake.ran = nil
		if err := p.Run(context.Background(), h); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var unpacks []string
		for _, cmd := range fake.ran {
			if strings.Contains(cmd, " --check ") {
				unpacks = append(unpacks, cmd)
			}
		}
		last := unpacks[len(unpacks)-1]
		if tc.fromPeer {
			if len(unpacks) != 1 || !strings.Contains(last, " --from 10.0.0.1:43210") {
				t.Errorf("%s: unpacked with %q, want one from 10.0.0.1:43210", name, unpacks)
			}
			if fake.streamed != src.token || len(src.token) != 65 {
				t.Errorf("%s: the host read %q, the server was given %q: want one token", name, fake.streamed, src.token)
			}
			if !strings.Contains(src.ran[0], "/var/lib/kubeforge/bundle/kube-unpack -serve /var/lib/kubeforge/bundle/archives/"+p.sum[:16]+".tar.zst -listen 10.0.0.1 ") {
				t.Errorf("%s: served with %q", name, src.ran[0])
			}
		} else {
			if strings.Contains(last, "--from") || fake.streamed != "archive" {
				t.Errorf("%s: unpacked with %q reading %q, want this machine's stream", name, last, fake.streamed)
			}
		}
		if got := strings.Contains(last, " --keep /var/lib/kubeforge/bundle/archives/"+p.sum[:16]+".tar.zst"); got != (tc.role == config.RoleControlPlane) {
			t.Errorf("%s: a %s keeps the archive: %v", name, tc.role, got)
		}
		if tc.targets == nil && len(src.ran) != 0 {
			t.Errorf("%s: init asked lab1 %q", name, src.ran)
		}
	}
}
