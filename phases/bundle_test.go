package phases

import (
	"context"
	"io"
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
}
