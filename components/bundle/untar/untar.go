// Package untar unpacks a bundle archive (tar, zstd or gzip compressed)
// into a directory, refusing any entry that would land outside it. It is
// what kube-unpack runs on a host that has no zstd program, and what
// kubeforge itself runs on the machine it joins; it depends on nothing but
// the standard library, the zstd decoder and internal/atomicfile, to keep
// kube-unpack small.
package untar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
)

// MaxWindow is the largest zstd window the decoder accepts: the
// archive's window (bundle.ZstdWindow) must fit, and the decoder holds
// one window of history in memory.
const MaxWindow = 128 << 20

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// Decompress returns the uncompressed stream of r, zstd or gzip by its
// first bytes, and a function that releases the decoder.
func Decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(4)
	if err != nil && len(head) < 2 {
		return nil, nil, fmt.Errorf("not a bundle archive: %d bytes", len(head))
	}
	switch {
	case bytes.HasPrefix(head, zstdMagic):
		// One goroutine: a host unpacks while its other services run.
		// Not the low-memory mode (the default): on the bundle it took 1.6 CPU-seconds
		// against 0.55 for 71 MB against 135 MB at most, while the unpack
		// runs (docs/benchmarks.md); a joining host has that memory.
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false),
			zstd.WithDecoderMaxWindow(MaxWindow))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	case bytes.HasPrefix(head, gzipMagic):
		g, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return g, func() { g.Close() }, nil
	}
	return nil, nil, fmt.Errorf("not a zstd or gzip archive (starts with % x)", head)
}

// Unpack decompresses r and extracts its tar into dir (created if
// missing). Only directories, regular files and symlinks are accepted,
// each inside dir: absolute names, "..", symlinks pointing out of dir,
// writing through a symlink and entries that exist already are refused.
// Permission bits are kept (not setuid, setgid or sticky); owners and
// times are not.
func Unpack(r io.Reader, dir string) error {
	return UnpackChecked(r, dir, Sums{})
}

// Sums is what an unpack checks as it goes, so that a host reads the
// archive once and never re-reads what it wrote: the sha256 of the
// compressed stream (hex; "" not checked) and of files it must hold
// (clean relative path to hex sha256).
type Sums struct {
	Archive string
	Files   map[string]string
}

// ErrMismatch is wrapped by the errors of an archive or a file whose
// sha256 is not the one expected, and of an expected file missing.
var ErrMismatch = errors.New("sha256 mismatch")

// UnpackChecked is Unpack, checking the archive's and the files' sums:
// every file of sums.Files must be a regular file of the archive with
// that sum. What it extracted stays in dir on an error; the caller
// unpacks into a temporary directory and renames it only on success.
func UnpackChecked(r io.Reader, dir string, sums Sums) error {
	ah := sha256.New()
	if sums.Archive != "" {
		r = io.TeeReader(r, ah)
	}
	zr, done, err := Decompress(r)
	if err != nil {
		return err
	}
	defer done()
	got, err := extractAll(zr, dir, sums.Files)
	if err != nil {
		return err
	}
	if sums.Archive != "" {
		// The tar ends before its compressed stream does: the rest is
		// part of the archive's sum too.
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		if sum := hex.EncodeToString(ah.Sum(nil)); sum != sums.Archive {
			return fmt.Errorf("%w: the archive has %s, expected %s (corrupted in transit?)", ErrMismatch, sum, sums.Archive)
		}
	}
	var bad []string
	for name, want := range sums.Files {
		switch sum, ok := got[name]; {
		case !ok:
			bad = append(bad, name+": missing from the archive")
		case sum != want:
			bad = append(bad, fmt.Sprintf("%s: %s, expected %s", name, sum, want))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%w: %s", ErrMismatch, strings.Join(bad, "; "))
	}
	return nil
}

// Extract extracts an uncompressed tar stream into dir, as Unpack.
func Extract(r io.Reader, dir string) error {
	_, err := extractAll(r, dir, nil)
	return err
}

// extractAll extracts the tar r into dir and returns the sha256 of the
// regular files named in want, hashed as they are written.
func extractAll(r io.Reader, dir string, want map[string]string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	got := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the archive: %w", err)
		}
		name, err := clean(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", hdr.Name, err)
		}
		var sum hash.Hash
		if _, ok := want[name]; ok && hdr.Typeflag == tar.TypeReg {
			sum = sha256.New()
		}
		if err := extract(tr, hdr, name, dir, sum); err != nil {
			return nil, fmt.Errorf("%q: %w", hdr.Name, err)
		}
		if sum != nil {
			got[name] = hex.EncodeToString(sum.Sum(nil))
		}
	}
}

// ErrUnsafe is wrapped by the errors of entries that are refused.
var ErrUnsafe = errors.New("refused")

// extract writes one entry, name being hdr.Name cleaned; a regular
// file's content also goes to sum when there is one.
func extract(tr *tar.Reader, hdr *tar.Header, name, dir string, sum hash.Hash) error {
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("%w: an entry without a name", ErrUnsafe)
	}
	if err := noLinkBetween(dir, name); err != nil {
		return err
	}
	target := filepath.Join(dir, filepath.FromSlash(name))
	perm := fs.FileMode(hdr.Mode).Perm()
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, err := os.Lstat(target); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: exists and is not a directory", ErrUnsafe)
		}
		return os.Chmod(target, perm)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		// O_EXCL: never through a symlink, never over an earlier entry.
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		var w io.Writer = f
		if sum != nil {
			w = io.MultiWriter(f, sum)
		}
		if _, err := io.Copy(w, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Chmod(perm); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		if err := symlinkInside(name, hdr.Linkname); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.Symlink(hdr.Linkname, target)
	}
	return fmt.Errorf("%w: entry type %q (only directories, regular files and symlinks)", ErrUnsafe, hdr.Typeflag)
}

// clean checks a tar name: relative, no "..", and returns it cleaned.
func clean(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: an absolute or non-portable name", ErrUnsafe)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: a name with \"..\"", ErrUnsafe)
		}
	}
	return path.Clean(name), nil
}

// symlinkInside refuses a link that resolves outside the directory it is
// extracted into. Lexically inside is not enough ("d" -> ".", then
// "q" -> "d/.." is the parent of the directory for the kernel), so a
// target must be clean, with ".." only at its start, which the kernel
// resolves against the link's own directory (a real one: noLinkBetween),
// not too many of them, and nothing but names going down after them.
func symlinkInside(name, link string) error {
	if link == "" || path.IsAbs(link) || path.Clean(link) != link {
		return fmt.Errorf("%w: a symlink to %q, absolute or not a clean path", ErrUnsafe, link)
	}
	rest, up := link, 0
	for rest == ".." || strings.HasPrefix(rest, "../") {
		rest, up = strings.TrimPrefix(strings.TrimPrefix(rest, ".."), "/"), up+1
	}
	for _, part := range strings.Split(rest, "/") {
		if part == ".." {
			return fmt.Errorf("%w: a symlink to %q: \"..\" after a name", ErrUnsafe, link)
		}
	}
	if depth := strings.Count(name, "/"); up > depth {
		return fmt.Errorf("%w: a symlink to %q, outside the bundle", ErrUnsafe, link)
	}
	return nil
}

// noLinkBetween refuses an entry whose parent directories, below dir,
// include a symlink: writing through one could leave dir.
func noLinkBetween(dir, name string) error {
	p := dir
	parts := strings.Split(name, "/")
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, part)
		}
	}
	return nil
}

// ReadSums reads a list of file sums in sha256sum's format ("HEX  NAME"
// per line), as the bundle phase writes it for UnpackChecked.
func ReadSums(r io.Reader) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("sums line %d: not \"SHA256  NAME\"", n)
		}
		name, err := clean(name)
		if err != nil || name == "." {
			return nil, fmt.Errorf("sums line %d: %q is not a file of the bundle", n, name)
		}
		sums[name] = sum
	}
	return sums, sc.Err()
}

// ReadSumsFile is ReadSums of a file.
func ReadSumsFile(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadSums(f)
}

// UnpackWithSumsFile is UnpackChecked with the files' sums read from a
// file ("" checks none): what kube-unpack and `kubeforge bundle unpack`
// run.
func UnpackWithSumsFile(r io.Reader, dir, archiveSum, sumsFile string) error {
	sums := Sums{Archive: archiveSum}
	if sumsFile != "" {
		var err error
		if sums.Files, err = ReadSumsFile(sumsFile); err != nil {
			return err
		}
	}
	return UnpackChecked(r, dir, sums)
}

// UnpackAndKeep is UnpackWithSumsFile that also keeps the archive at
// keep ("" keeps none), for a host that serves it to others later (a
// control plane, to the nodes that join): teed to a temporary name as it
// is read, moved into place (0644) only once the unpack checked its sum.
func UnpackAndKeep(r io.Reader, dir, archiveSum, sumsFile, keep string) error {
	if keep == "" {
		return UnpackWithSumsFile(r, dir, archiveSum, sumsFile)
	}
	if archiveSum == "" {
		return errors.New("keep the archive: its sha256 is needed, only a checked archive is kept")
	}
	return atomicfile.WriteCache(keep, 0o644, 0o755, func(w io.Writer) error {
		return UnpackWithSumsFile(io.TeeReader(r, w), dir, archiveSum, sumsFile)
	})
}
