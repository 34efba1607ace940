package bundle

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// HashFile returns the hex sha256 and the size of a file.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ModuleVersion reads the version of module that a Go binary was linked
// with, from the build information the Go linker embeds. It is the ground
// truth for what a bundled binary contains.
func ModuleVersion(binary, module string) (string, error) {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return "", fmt.Errorf("%s: %w", binary, err)
	}
	if info.Main.Path == module {
		return info.Main.Version, nil
	}
	for _, dep := range info.Deps {
		if dep.Path != module {
			continue
		}
		if dep.Replace != nil {
			return dep.Replace.Version, nil
		}
		return dep.Version, nil
	}
	return "", fmt.Errorf("%s: not built from module %s", binary, module)
}

// ReadVersionFile reads what a program not built with Go is, from the file
// its build script writes next to it (keepalived.version): "key=value"
// lines, of which module (where it comes from) and version are required.
func ReadVersionFile(path string) (module, version string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch key {
		case "module":
			module = value
		case "version":
			version = value
		}
	}
	if module == "" || version == "" {
		return "", "", fmt.Errorf("%s: want module= and version= lines, got %q", path, data)
	}
	return module, version, nil
}

// GoVersion returns the Go toolchain a binary was built with.
func GoVersion(binary string) (string, error) {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return "", fmt.Errorf("%s: %w", binary, err)
	}
	return info.GoVersion, nil
}

// writeAtomic writes a file through a temporary name and a rename.
func writeAtomic(path string, mode os.FileMode, write func(io.Writer) error) error {
	return atomicfile.WriteFunc(path, mode, 0o755, write)
}

func hostArch() string { return runtime.GOARCH }
