// Package bundle describes the component bundle kubeforge installs on the
// hosts: the binaries built from upstream source by this repo, the offline
// container images made from them, and the manifest that records the
// version, size and sha256 of each. The manifest travels inside the archive
// and next to it in dist/.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// ManifestFile is the manifest's name at the top of a bundle directory.
const ManifestFile = "manifest.json"

// ManifestVersion is bumped when the manifest's shape changes.
const ManifestVersion = 1

// Manifest lists everything in a bundle.
type Manifest struct {
	ManifestVersion int    `json:"manifestVersion"`
	Kubeforge       string `json:"kubeforge"` // version of the kubeforge tree that built it
	OS              string `json:"os"`
	Arch            string `json:"arch"`
	GoVersion       string `json:"goVersion"`
	// Archive is the compressed archive of the bundle, relative to the
	// manifest's directory. It holds the manifest and every file below.
	Archive string `json:"archive"`
	// Unpacker is kube-unpack, beside the archive and not in it: a host
	// without a zstd program runs it to unpack a zstd archive.
	Unpacker *Unpacker `json:"unpacker,omitempty"`
	Files    []File    `json:"files"`
	Images   []Image   `json:"images"`
}

// Unpacker is the program that unpacks the archive on a host, relative
// to the manifest's directory.
type Unpacker struct {
	Path   string `json:"path"` // "kube-unpack"
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// File is one executable of the bundle.
type File struct {
	Path   string `json:"path"` // relative to the bundle root: "bin/kube"
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Programs are what the file is: one for a plain binary, every command
	// for a multicall binary (each installed as a symlink to it).
	Programs []Program `json:"programs"`
}

// Program is one command and the upstream module it is built from.
type Program struct {
	Name    string `json:"name"`   // "kube-apiserver", "flanneld", "bridge"
	Module  string `json:"module"` // "k8s.io/kubernetes"
	Version string `json:"version"`
}

// Image is an offline container image: a docker-save tarball that
// `ctr images import` reads.
type Image struct {
	Name    string `json:"name"` // "pause", "coredns"
	Ref     string `json:"ref"`  // the reference pods and containerd use
	Path    string `json:"path"`
	Module  string `json:"module"` // the Go module of the program inside
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
}

// Component is one program or image and its version, as `kubeforge
// version` prints it.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Module  string `json:"module,omitempty"`
	Path    string `json:"path"` // the file that provides it
}

// Components flattens the manifest into one entry per program and image,
// sorted by name.
func (m *Manifest) Components() []Component {
	var out []Component
	for _, f := range m.Files {
		for _, p := range f.Programs {
			out = append(out, Component{Name: p.Name, Version: p.Version, Module: p.Module, Path: f.Path})
		}
	}
	for _, img := range m.Images {
		out = append(out, Component{Name: img.Name + " (image)", Version: img.Version, Module: img.Module, Path: img.Path})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Program returns the file that provides the named program.
func (m *Manifest) Program(name string) (File, Program, bool) {
	for _, f := range m.Files {
		for _, p := range f.Programs {
			if p.Name == name {
				return f, p, true
			}
		}
	}
	return File{}, Program{}, false
}

// Kubernetes is the Kubernetes release the bundle installs (its kubelet's
// version, v1.37.2), or "" when it has no kubelet.
func (m *Manifest) Kubernetes() string {
	_, p, _ := m.Program("kubelet")
	return p.Version
}

// Image returns the named image.
func (m *Manifest) Image(name string) (Image, bool) {
	for _, img := range m.Images {
		if img.Name == name {
			return img, true
		}
	}
	return Image{}, false
}

// ErrNoBundle is returned by Load when the directory holds no manifest.
var ErrNoBundle = errors.New("no bundle manifest")

// Load reads the manifest of the bundle in dir.
func Load(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (build one with 'make bundle')", path, ErrNoBundle)
	}
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// LoadArchive reads the manifest inside a bundle archive (its first
// file), for a bundle copied as the archive alone. Archive is set to the
// archive's own name, so a renamed archive still works.
func LoadArchive(path string) (*Manifest, error) {
	var data []byte
	errFound := errors.New("found")
	err := ReadArchive(path, func(name string, _ os.FileMode, r io.Reader) error {
		if name != ManifestFile {
			return fmt.Errorf("%s: %s is not its first file: not a kubeforge bundle", path, ManifestFile)
		}
		var err error
		if data, err = io.ReadAll(io.LimitReader(r, 16<<20)); err != nil {
			return err
		}
		return errFound
	})
	switch {
	case errors.Is(err, errFound):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("%s: %w", path, ErrNoBundle)
	}
	m, err := Parse(path+"!"+ManifestFile, data)
	if err != nil {
		return nil, err
	}
	m.Archive = filepath.Base(path)
	return m, nil
}

// Parse decodes a manifest; name is used in errors.
func Parse(name string, data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if m.ManifestVersion != ManifestVersion {
		return nil, fmt.Errorf("%s: manifest version %d, this kubeforge reads version %d: rebuild the bundle with this tree",
			name, m.ManifestVersion, ManifestVersion)
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%s: lists no files", name)
	}
	return &m, nil
}

// WriteManifest writes m as indented JSON, atomically.
func WriteManifest(path string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}
