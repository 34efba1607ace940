package bundle

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kubeforge/kubeforge/components/bundle/untar"
)

// Compression of the bundle archive.
type Compression string

const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// ZstdWindow is the zstd archive's window: matches reach this far back,
// across the bundle's binaries (which share much code), and a decoder
// holds this much history in memory. docs/benchmarks.md has the sizes and
// the decoder's memory for each window measured.
const ZstdWindow = 64 << 20

// IsZstd reports whether an archive's name says zstd.
func IsZstd(archive string) bool { return strings.HasSuffix(archive, Zstd.Ext()) }

// Ext is the archive's file name extension.
func (c Compression) Ext() string {
	if c == Zstd {
		return ".tar.zst"
	}
	return ".tar.gz"
}

// ParseCompression checks a compression name.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Gzip, Zstd:
		return c, nil
	}
	return "", fmt.Errorf("unknown compression %q (gzip or zstd)", s)
}

// WriteArchive writes a tar of the given paths (relative to root) to out,
// compressed. Entries are sorted, owned by root and dated at the Unix epoch,
// so the same files give the same archive.
func WriteArchive(root string, paths []string, out string, c Compression) error {
	sorted := append([]string(nil), paths...)
	sort.Slice(sorted, func(i, j int) bool {
		// The manifest first, so a reader can check the rest against it.
		if (sorted[i] == ManifestFile) != (sorted[j] == ManifestFile) {
			return sorted[i] == ManifestFile
		}
		return sorted[i] < sorted[j]
	})
	return writeAtomic(out, 0o644, func(w io.Writer) error {
		zw, err := compressor(w, c)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(zw)
		dirs := map[string]bool{}
		for _, p := range sorted {
			if err := addDirs(tw, dirs, filepath.ToSlash(filepath.Dir(p))); err != nil {
				return err
			}
			if err := addFile(tw, root, p); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	})
}

func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithWindowSize(ZstdWindow))
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

func addDirs(tw *tar.Writer, seen map[string]bool, dir string) error {
	if dir == "." || dir == "" || seen[dir] {
		return nil
	}
	if err := addDirs(tw, seen, filepath.ToSlash(filepath.Dir(dir))); err != nil {
		return err
	}
	seen[dir] = true
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatPAX})
}

func addFile(tw *tar.Writer, root, rel string) error {
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     filepath.ToSlash(rel),
		Mode:     int64(fi.Mode().Perm()),
		Size:     fi.Size(),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

// ReadArchive calls fn for each regular file of a bundle archive, zstd
// or gzip (told by its first bytes).
func ReadArchive(path string, fn func(name string, mode os.FileMode, r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, done, err := untar.Decompress(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer done()
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := fn(hdr.Name, os.FileMode(hdr.Mode).Perm(), tr); err != nil {
			return err
		}
	}
}
