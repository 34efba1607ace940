//go:build integration

package integration

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeforge/kubeforge/components/bundle"
)

// The hosts' path: dist/kube-unpack (checked against the manifest,
// static, small) unpacks the real archive streamed to it, checking the
// archive's and every file's sum as a host does (--sha256, --check), and
// an outside `sha256sum -c` agrees; a wrong archive sum is refused.
// kubeforge itself ('bundle unpack', a node joining on its own) gives
// the same.
func TestUnpackDistArchive(t *testing.T) {
	dir, m := loadDist(t)
	archive := filepath.Join(dir, m.Archive)
	type unpacker struct {
		name string
		argv []string
	}
	var unpackers []unpacker
	{
		if m.Unpacker == nil {
			t.Fatalf("the manifest of the archive %s names no unpacker", m.Archive)
		}
		ku := filepath.Join(dir, m.Unpacker.Path)
		sum, size, err := bundle.HashFile(ku)
		if err != nil || sum != m.Unpacker.SHA256 || size != m.Unpacker.Size {
			t.Fatalf("%s: sha256 %s size %d (%v), the manifest says %s %d", ku, sum, size, err, m.Unpacker.SHA256, m.Unpacker.Size)
		}
		if size > 5<<20 {
			t.Errorf("%s is %.1f MiB: it should stay a few MiB", ku, float64(size)/(1<<20))
		}
		assertStatic(t, ku)
		unpackers = append(unpackers, unpacker{"kube-unpack", []string{ku}})
	}
	bin := os.Getenv("KUBEFORGE_BIN")
	if bin == "" {
		t.Fatal("KUBEFORGE_BIN is not set: run this test with 'make integration'")
	}
	unpackers = append(unpackers, unpacker{"kubeforge bundle unpack", []string{filepath.Join(bin, "kubeforge"), "bundle", "unpack"}})

	var sums strings.Builder
	for _, f := range m.Files {
		sums.WriteString(f.SHA256 + "  " + f.Path + "\n")
	}
	for _, img := range m.Images {
		sums.WriteString(img.SHA256 + "  " + img.Path + "\n")
	}
	sumsFile := filepath.Join(t.TempDir(), "sums")
	if err := os.WriteFile(sumsFile, []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	archiveSum, _, err := bundle.HashFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	unpack := func(u unpacker, out, sum string) ([]byte, error) {
		in, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		cmd := exec.Command(u.argv[0], append(u.argv[1:], "-C", out, "--sha256", sum, "--check", sumsFile)...)
		cmd.Stdin = in
		return cmd.CombinedOutput()
	}
	for _, u := range unpackers {
		wrong := strings.Repeat("0", 64)
		if msg, err := unpack(u, filepath.Join(t.TempDir(), "unpacking"), wrong); err == nil || !strings.Contains(string(msg), "sha256 mismatch") {
			t.Errorf("%s --sha256 %s: %v, want a refusal\n%s", u.name, wrong, err, msg)
		}
		out := filepath.Join(t.TempDir(), "unpacking")
		if msg, err := unpack(u, out, archiveSum); err != nil {
			t.Fatalf("%s -C %s --sha256 %s --check %s < %s: %v\n%s", u.name, out, archiveSum, sumsFile, archive, err, msg)
		}
		check := exec.Command("sha256sum", "-c", "--quiet", "--strict")
		check.Dir = out
		check.Stdin = strings.NewReader(sums.String())
		if msg, err := check.CombinedOutput(); err != nil {
			t.Errorf("%s: sha256sum -c: %v\n%s", u.name, err, msg)
		}
		for _, f := range m.Files {
			if fi, err := os.Stat(filepath.Join(out, f.Path)); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: %s: %v %v, want mode 0755", u.name, f.Path, fi, err)
			}
		}
		if _, err := bundle.Load(out); err != nil {
			t.Errorf("%s: the unpacked manifest: %v", u.name, err)
		}
	}
}

func assertStatic(t *testing.T, path string) {
	t.Helper()
	e, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: dynamically linked", path)
		}
	}
	if libs, err := e.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (%v)", path, libs, err)
	}
}
