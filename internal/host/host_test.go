package host

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/ssh"
)

// scripted is a fake transport: it answers commands from a script and
// records what it was asked.
type scripted struct {
	calls  []string
	inputs []string
	answer func(cmd, stdin string) ssh.Result
}

func (s *scripted) Run(_ context.Context, cmd string, stdin io.Reader) (ssh.Result, error) {
	in := ""
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		in = string(b)
	}
	s.calls = append(s.calls, cmd)
	s.inputs = append(s.inputs, in)
	return s.answer(cmd, in), nil
}
func (s *scripted) Put(context.Context, io.Reader, string) error { return nil }
func (s *scripted) Get(context.Context, string, io.Writer) error { return nil }
func (s *scripted) Close() error                                 { return nil }

func spec() *config.Host {
	return &config.Host{Name: "h1", Address: "192.0.2.1", SSH: config.SSH{User: "kf"}}
}

func TestSudoModes(t *testing.T) {
	ctx := context.Background()

	root := &scripted{answer: func(cmd, _ string) ssh.Result { return ssh.Result{Stdout: []byte("0\n")} }}
	h := New(spec(), root)
	if err := h.detectSudo(ctx, "root", nil); err != nil || h.sudo.mode != asRoot {
		t.Fatalf("root: %v %v", h.sudo.mode, err)
	}
	h.Run(ctx, "echo hi")
	if last := root.calls[len(root.calls)-1]; last != "echo hi" {
		t.Errorf("root runs commands as they are, got %q", last)
	}

	nopasswd := &scripted{answer: func(cmd, _ string) ssh.Result {
		if cmd == "id -u" {
			return ssh.Result{Stdout: []byte("1000\n")}
		}
		return ssh.Result{}
	}}
	h = New(spec(), nopasswd)
	if err := h.detectSudo(ctx, "kf", nil); err != nil || h.sudo.mode != sudoNoPasswd {
		t.Fatalf("nopasswd: %v %v", h.sudo.mode, err)
	}
	h.Run(ctx, "echo 'a b'")
	if last := nopasswd.calls[len(nopasswd.calls)-1]; last != `sudo -n -- sh -c 'echo '\''a b'\'''` {
		t.Errorf("sudo -n line: %q", last)
	}

	// Password sudo: the password is stdin's first line, never the command line.
	var withPassword *scripted
	withPassword = &scripted{answer: func(cmd, stdin string) ssh.Result {
		switch {
		case cmd == "id -u":
			return ssh.Result{Stdout: []byte("1000\n")}
		case cmd == "sudo -n true":
			return ssh.Result{ExitCode: 1, Stderr: []byte("sudo: a password is required")}
		case strings.HasPrefix(cmd, "sudo -k -S"):
			if !strings.HasPrefix(stdin, "kubeforge\n") {
				return ssh.Result{ExitCode: 1, Stderr: []byte("Sorry, try again.\nsudo: 1 incorrect password attempt")}
			}
			return ssh.Result{Stdout: []byte("0\n")}
		}
		return ssh.Result{}
	}}
	h = New(spec(), withPassword)
	if err := h.detectSudo(ctx, "kf", []byte("kubeforge")); err != nil || h.sudo.mode != sudoPassword {
		t.Fatalf("password sudo: %v %v", h.sudo.mode, err)
	}
	h.RunWithInput(ctx, "cat > /etc/x", []byte("content"))
	last := len(withPassword.calls) - 1
	if strings.Contains(withPassword.calls[last], "kubeforge") || withPassword.inputs[last] != "kubeforge\ncontent" {
		t.Errorf("password leaked into the command line or stdin wrong: %q / %q", withPassword.calls[last], withPassword.inputs[last])
	}

	h = New(spec(), withPassword)
	err := h.detectSudo(ctx, "kf", []byte("wrong"))
	var se *SudoError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "password was refused") || !strings.Contains(err.Error(), "h1 (192.0.2.1)") {
		t.Fatalf("wrong password: %v", err)
	}
	h = New(spec(), withPassword)
	if err := h.detectSudo(ctx, "kf", nil); !errors.As(err, &se) || !strings.Contains(err.Error(), "sudoPasswordEnv") {
		t.Fatalf("no password: %v", err)
	}
}

func TestCommandErrorNamesHostAndStderr(t *testing.T) {
	h := New(spec(), &scripted{answer: func(string, string) ssh.Result {
		return ssh.Result{ExitCode: 2, Stderr: []byte("no such file\n")}
	}})
	_, err := h.Run(context.Background(), "ls /nope")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 2 || err.Error() != "host h1 (192.0.2.1): `ls /nope` exited 2: no such file" {
		t.Fatalf("%v", err)
	}
}

// TestFilesOnLocalTransport exercises the real shell commands of WriteFile,
// Upload, ReadFile and FileSum on this machine.
func TestFilesOnLocalTransport(t *testing.T) {
	ctx := context.Background()
	h := New(&config.Host{Name: "local", Local: true}, localTransport{})
	dir := t.TempDir()
	p := filepath.Join(dir, "etc", "kubernetes", "admin.conf")

	changed, err := h.WriteFile(ctx, p, []byte("one"), FileMode{Perm: 0o600})
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	changed, err = h.WriteFile(ctx, p, []byte("one"), FileMode{Perm: 0o600})
	if err != nil || changed {
		t.Fatalf("same content rewritten: %v %v", changed, err)
	}
	changed, err = h.WriteFile(ctx, p, []byte("one"), FileMode{Perm: 0o644})
	if err != nil || !changed {
		t.Fatalf("mode change ignored: %v %v", changed, err)
	}
	data, err := h.ReadFile(ctx, p)
	if err != nil || string(data) != "one" {
		t.Fatalf("read %q %v", data, err)
	}
	if _, err := h.ReadFile(ctx, filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}

	local := filepath.Join(dir, "big")
	os.WriteFile(local, bytes.Repeat([]byte("x"), 1<<20), 0o644)
	sum := "f5b7f2b0f5a4b95e7b3a8d1b8a0e5a3d2cfd3d3f3a05a2e8c8e5c3c9b36b1f5b" // wrong on purpose first
	if _, err := h.Upload(ctx, local, filepath.Join(dir, "dst"), sum, FileMode{Perm: 0o644}); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Fatalf("a wrong sum must fail the upload: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dst")); !os.IsNotExist(err) {
		t.Fatal("a failed upload left the destination")
	}
	content, _ := os.ReadFile(local)
	real := SumOf(content)
	copied, err := h.Upload(ctx, local, filepath.Join(dir, "dst"), real, FileMode{Perm: 0o644})
	if err != nil || !copied {
		t.Fatalf("upload: %v %v", copied, err)
	}
	copied, err = h.Upload(ctx, local, filepath.Join(dir, "dst"), real, FileMode{Perm: 0o644})
	if err != nil || copied {
		t.Fatalf("second upload not skipped: %v %v", copied, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".*.kubeforge-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestParseFacts(t *testing.T) {
	out := `hostname=lab1
os_id=debian
os_id_like=
os_version=12
os_pretty=Debian GNU/Linux 12 (bookworm)
arch=x86_64
kernel=6.1.0-18-amd64
init=systemd
systemd_running=1
cgroupfs=tmpfs
mem=24576000
swap=0
cpus=2
pkg=apt-get
containerd=containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1
addr=lo 127.0.0.1/8
addr=eth0 172.30.0.11/24
resolvconf=/etc/resolv.conf
nameserver=127.0.0.11
nameserver=192.0.2.53
`
	f, err := parseFacts(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.OSID != "debian" || f.CgroupVersion != 1 || f.InitSystem != "systemd" || f.PackageManager != "apt" ||
		f.Containerd != "1.6.20~ds1" || f.Keepalived != "" || f.CPUs != 2 || f.MemoryBytes != 24576000*1024 || f.GoArch() != "amd64" {
		t.Fatalf("%+v", f)
	}
	if !f.Supported() {
		t.Error("debian unsupported")
	}
	if up := f.Upstreams(); len(up) != 1 || up[0].String() != "192.0.2.53" || f.ResolvConf != "/etc/resolv.conf" {
		t.Errorf("upstreams %v from %s", up, f.ResolvConf)
	}
	iface, p, ok := f.PrefixOf(netip.MustParseAddr("172.30.0.11"))
	if !ok || iface != "eth0" || p.Masked().String() != "172.30.0.0/24" {
		t.Errorf("PrefixOf: %s %s %v", iface, p, ok)
	}
	rocky, err := parseFacts("os_id=rocky\nos_id_like=rhel centos fedora\narch=aarch64\ncgroupfs=cgroup2fs\npkg=dnf\nkeepalived=Keepalived v2.2.8 (04/04,2023)\n")
	if err != nil || rocky.CgroupVersion != 2 || rocky.GoArch() != "arm64" || rocky.Keepalived != "2.2.8" || !rocky.Supported() {
		t.Fatalf("rocky: %+v %v", rocky, err)
	}
	if pm, err := rocky.PackageManagerFor(); err != nil || !strings.HasPrefix(pm.InstallCommand("keepalived"), "dnf install -y") {
		t.Fatalf("dnf: %v", err)
	}
	if _, err := parseFacts("garbage"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestMissingPackagesOnThisMachine(t *testing.T) {
	if _, err := os.Stat("/usr/bin/dpkg-query"); err != nil {
		t.Skip("this machine has no dpkg (the apt registry entry needs it)")
	}
	h := New(&config.Host{Name: "local", Local: true}, localTransport{})
	h.SetFacts(&Facts{PackageManager: "apt"})
	missing, err := h.MissingPackages(context.Background(), "dpkg", "kubeforge-no-such-package", "coreutils")
	if err != nil || len(missing) != 1 || missing[0] != "kubeforge-no-such-package" {
		t.Fatalf("missing %v, %v", missing, err)
	}
}

// PutAll stages every file before it renames any, and renames them in one
// command; a file that fails to stage leaves every target as it was.
func TestPutAllStagesThenCommits(t *testing.T) {
	ctx := context.Background()
	files := []Write{{Path: "/etc/kubernetes/pki/apiserver.crt", Data: []byte("cert")}, {Path: "/etc/kubernetes/pki/apiserver.key", Data: []byte("key"), Mode: FileMode{Perm: 0o600}}}

	ok := &scripted{answer: func(string, string) ssh.Result { return ssh.Result{} }}
	if err := New(spec(), ok).PutAll(ctx, files); err != nil {
		t.Fatal(err)
	}
	var installs, commits []int
	for i, c := range ok.calls {
		switch {
		case strings.Contains(c, "install -m"):
			installs = append(installs, i)
		case strings.HasPrefix(c, "set -e\nmv -f "):
			commits = append(commits, i)
			if strings.Count(c, "mv -f ") != 2 || !strings.Contains(c, " /etc/kubernetes/pki/apiserver.crt\n") || !strings.Contains(c, " /etc/kubernetes/pki/apiserver.key\n") {
				t.Errorf("commit: %q", c)
			}
		}
	}
	if len(installs) != 2 || len(commits) != 1 || commits[0] < installs[1] {
		t.Fatalf("installs at %v, commits at %v: %q", installs, commits, ok.calls)
	}

	// The key fails its checksum: nothing is renamed, the staged cert goes.
	failing := &scripted{answer: func(cmd, _ string) ssh.Result {
		if strings.Contains(cmd, "install -m 600") {
			return ssh.Result{ExitCode: 1, Stderr: []byte("upload corrupted in transit")}
		}
		return ssh.Result{}
	}}
	if err := New(spec(), failing).PutAll(ctx, files); err == nil {
		t.Fatal("a failed stage reported success")
	}
	for _, c := range failing.calls {
		if strings.Contains(c, "mv -f") {
			t.Errorf("renamed after a failed stage: %q", c)
		}
	}
	if last := failing.calls[len(failing.calls)-1]; !strings.HasPrefix(last, "rm -f /etc/kubernetes/pki/.apiserver.crt.kubeforge-") {
		t.Errorf("the staged certificate is left behind: last command %q", last)
	}
}
