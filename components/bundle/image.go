package bundle

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ImageSpec describes a single-layer image made from local files: the
// offline images of the bundle and the test workload image.
type ImageSpec struct {
	Ref        string      // full reference, with tag
	Files      []ImageFile // the layer's content
	Entrypoint []string
	Cmd        []string
	User       string
	Env        []string
	Ports      []string // "53/udp"
	Arch       string   // GOARCH; the host's when empty
	// Created is the image's creation time; a fixed value keeps the image
	// digest reproducible (the zero value means the Unix epoch).
	Created time.Time
}

// ImageFile is one file of the layer.
type ImageFile struct {
	Path   string // absolute path in the image: "/coredns"
	Source string // file on disk; or
	Data   []byte // content, when Source is empty
	Mode   int64  // 0755 when zero
}

// WriteImage writes spec as a docker-save tarball at out and returns the
// image's config digest (the image ID containerd shows).
func WriteImage(spec ImageSpec, out string) (string, error) {
	ref, err := name.ParseReference(spec.Ref, name.WithDefaultRegistry(""))
	if err != nil {
		return "", fmt.Errorf("image %q: %w", spec.Ref, err)
	}
	layerTar, err := layerTar(spec)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return "", fmt.Errorf("image %s: layer: %w", spec.Ref, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = spec.Arch
	if cf.Architecture == "" {
		cf.Architecture = hostArch()
	}
	cf.Created = v1.Time{Time: spec.Created.UTC()}
	if spec.Created.IsZero() {
		cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.User = spec.User
	cf.Config.Env = spec.Env
	if len(spec.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.Ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return "", err
	}
	id, err := img.ConfigName()
	if err != nil {
		return "", err
	}
	if err := writeAtomic(out, 0o644, func(w io.Writer) error {
		return tarball.Write(ref, img, w)
	}); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	return id.String(), nil
}

// layerTar builds the layer: the files and their parent directories, with
// fixed owners and times so the same inputs give the same digest.
func layerTar(spec ImageSpec) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	files := append([]ImageFile(nil), spec.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("file %q: path must be absolute", f.Path)
		}
		for d := path.Dir(f.Path); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sortedDirs := make([]string, 0, len(dirs))
	for d := range dirs {
		sortedDirs = append(sortedDirs, d)
	}
	sort.Strings(sortedDirs)
	for _, d := range sortedDirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		data := f.Data
		if f.Source != "" {
			var err error
			if data, err = os.ReadFile(f.Source); err != nil {
				return nil, err
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: mode, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
