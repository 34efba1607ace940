package phases

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/internal/host"
)

// Where the bundle lives on a host.
const (
	// BundleArchiveDir keeps the uploaded archive, so a re-run compares
	// sums instead of transferring it again.
	BundleArchiveDir = "/var/lib/kubeforge/bundle"
	// BundleRoot holds one directory per unpacked bundle, by archive sum,
	// and "current" pointing at the one in use.
	BundleRoot = "/opt/kubeforge"
	// bundleComplete marks a fully unpacked and verified bundle.
	bundleComplete = ".complete"
	// BundleUnpacker is kube-unpack on a host, for a zstd archive: hosts
	// have no zstd program. Beside the archive, not in /tmp, which may
	// be mounted noexec.
	BundleUnpacker = BundleArchiveDir + "/kube-unpack"
	// LocalUnpackCommand is the kubeforge command that unpacks an archive
	// on the machine kubeforge runs on (a node joining on its own has the
	// kubeforge binary and the archive, no kube-unpack): the same code
	// as kube-unpack, "-C DIR < ARCHIVE".
	LocalUnpackCommand = "bundle unpack"
)

// selfExecutable is the running kubeforge binary, for LocalUnpackCommand.
var selfExecutable = func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(exe)
}

// CurrentBundle is the unpacked bundle the hosts' components run from.
func CurrentBundle() string { return path.Join(BundleRoot, "current") }

// bundlePhase uploads the compressed bundle (skipped when the host has it
// already) and unpacks and verifies it.
type bundlePhase struct {
	env     *Env
	archive string // local path
	sum     string // its sha256, hashed once for every host
	size    int64
	zstd    bool
	// unpacker is kube-unpack on this machine, for the hosts reached over
	// SSH when the archive is zstd; unpackerErr why there is none (a node
	// joining on its own has only the archive, and needs none).
	unpacker    string
	unpackerErr error
}

func (*bundlePhase) Title() string { return "Upload and unpack the component bundle" }

// Prepare hashes the archive once for all hosts.
func (p *bundlePhase) Prepare(context.Context) error {
	if p.env.Bundle == nil {
		return fmt.Errorf("no bundle: build one with 'make bundle' or pass --bundle")
	}
	p.archive = filepath.Join(p.env.BundleDir, p.env.Bundle.Archive)
	var err error
	if p.sum, p.size, err = bundle.HashFile(p.archive); err != nil {
		return fmt.Errorf("bundle archive: %w", err)
	}
	if p.zstd = bundle.IsZstd(p.archive); p.zstd {
		p.unpackerErr = p.checkUnpacker()
	}
	return nil
}

// checkUnpacker finds kube-unpack beside the manifest and checks it
// against it.
func (p *bundlePhase) checkUnpacker() error {
	u := p.env.Bundle.Unpacker
	if u == nil {
		return fmt.Errorf("the bundle's manifest names no unpacker for its zstd archive %s: rebuild it with this tree's 'make bundle' (or COMPRESSION=gzip)", p.env.Bundle.Archive)
	}
	local := filepath.Join(p.env.BundleDir, u.Path)
	sum, _, err := bundle.HashFile(local)
	if err != nil {
		return fmt.Errorf("a zstd bundle needs its unpacker beside the archive: %w (copy %s from the bundle's directory too)", err, u.Path)
	}
	if sum != u.SHA256 {
		return fmt.Errorf("%s has sha256 %s, the manifest says %s: copy the bundle's directory again", local, sum, u.SHA256)
	}
	p.unpacker = local
	return nil
}

// needsUnpacker: the host unpacks with kube-unpack, uploaded to it.
func (p *bundlePhase) needsUnpacker(h *host.Host) bool { return p.zstd && !h.Spec.Local }

func (p *bundlePhase) remoteArchive() string {
	return path.Join(BundleArchiveDir, p.env.Bundle.Archive)
}
func (p *bundlePhase) unpackDir() string { return path.Join(BundleRoot, p.sum[:16]) }

// bundleState is what a host has of the bundle.
type bundleState struct {
	archived, unpacked, current bool
	// unpackerOK: the host has kube-unpack, this one, 0755 root's.
	unpackerOK bool
}

// state reports what the host has: the archive, the unpacked bundle and
// its unpacker.
func (p *bundlePhase) state(ctx context.Context, h *host.Host) (bundleState, error) {
	// One round trip for the answers. The archive (90 MiB) is
	// hashed only when its bundle is not unpacked and verified already
	// (the unpack checked it, file by file): hashing it on every host on
	// every run cost each a quarter of a core-second.
	script := fmt.Sprintf(`complete=$(cat %[2]s 2>/dev/null)
echo "complete=$complete"
echo "current=$(readlink %[3]s)"
if [ "$complete" = %[4]s ]; then [ -s %[1]s ] && echo "archive=%[4]s"; else echo "archive=$(sha256sum < %[1]s 2>/dev/null | cut -d' ' -f1)"; fi; true`,
		host.Quote(p.remoteArchive()), host.Quote(path.Join(p.unpackDir(), bundleComplete)), host.Quote(CurrentBundle()),
		p.sum)
	if p.needsUnpacker(h) {
		script += fmt.Sprintf("\n[ \"$complete\" = %[2]s ] || [ ! -f %[1]s ] || echo \"unpacker=$(sha256sum < %[1]s | cut -d' ' -f1) $(stat -c '%%a %%U:%%G' %[1]s)\"; true",
			host.Quote(BundleUnpacker), p.sum)
	}
	out, err := h.Run(ctx, script)
	if err != nil {
		return bundleState{}, err
	}
	var st bundleState
	st.archived = strings.Contains(out, "archive="+p.sum+"\n")
	st.unpacked = strings.Contains(out, "complete="+p.sum+"\n")
	st.current = strings.Contains(out, "current="+p.unpackDir()+"\n")
	if p.unpacker != "" {
		st.unpackerOK = strings.Contains(out, "unpacker="+p.env.Bundle.Unpacker.SHA256+" 755 root:root\n")
	}
	return st, nil
}

func (p *bundlePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	st, err := p.state(ctx, h)
	if err != nil {
		return nil, err
	}
	var plan []string
	if !st.archived {
		plan = append(plan, fmt.Sprintf("upload %s (%.1f MiB) to %s", p.env.Bundle.Archive, float64(p.size)/(1<<20), BundleArchiveDir))
	}
	if !st.unpacked {
		switch {
		case !p.needsUnpacker(h):
		case p.unpackerErr != nil:
			return nil, p.unpackerErr
		case !st.unpackerOK:
			plan = append(plan, fmt.Sprintf("upload the unpacker %s (%.1f MiB) to %s", p.env.Bundle.Unpacker.Path,
				float64(p.env.Bundle.Unpacker.Size)/(1<<20), BundleUnpacker))
		}
		plan = append(plan, "unpack and verify it in "+p.unpackDir())
	}
	if !st.current {
		plan = append(plan, "point "+CurrentBundle()+" at it")
	}
	return plan, nil
}

func (p *bundlePhase) Run(ctx context.Context, h *host.Host) error {
	st, err := p.state(ctx, h)
	if err != nil {
		return err
	}
	if !st.unpacked && p.needsUnpacker(h) && p.unpackerErr != nil {
		return p.unpackerErr // before the long upload
	}
	if !st.archived {
		if _, err := h.Upload(ctx, p.archive, p.remoteArchive(), p.sum, host.FileMode{Perm: 0o644}); err != nil {
			return err
		}
	}
	if !st.unpacked {
		if p.needsUnpacker(h) && !st.unpackerOK {
			if _, err := h.Upload(ctx, p.unpacker, BundleUnpacker, p.env.Bundle.Unpacker.SHA256, host.FileMode{Perm: 0o755}); err != nil {
				return err
			}
		}
		if err := p.unpack(ctx, h); err != nil {
			return err
		}
	}
	if !st.current {
		tmp := CurrentBundle() + ".kubeforge-new"
		if _, err := h.Run(ctx, fmt.Sprintf("ln -sfn %s %s && mv -Tf %s %s",
			host.Quote(p.unpackDir()), host.Quote(tmp), host.Quote(tmp), host.Quote(CurrentBundle()))); err != nil {
			return err
		}
	}
	return nil
}

// unpack extracts the archive into a temporary directory, checks every
// file against the manifest, and renames the directory into place.
func (p *bundlePhase) unpack(ctx context.Context, h *host.Host) error {
	var sums strings.Builder
	for _, f := range p.env.Bundle.Files {
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Path)
	}
	for _, img := range p.env.Bundle.Images {
		fmt.Fprintf(&sums, "%s  %s\n", img.SHA256, img.Path)
	}
	dir, tmp := p.unpackDir(), p.unpackDir()+".unpacking"
	extract, err := p.extractCommand(h, tmp)
	if err != nil {
		return err
	}
	script := fmt.Sprintf(`set -e
rm -rf %[1]s
mkdir -p %[1]s
%[6]s
cd %[1]s
sha256sum -c --quiet --strict
echo %[3]s > %[4]s
rm -rf %[5]s
mv -T %[1]s %[5]s`, host.Quote(tmp), host.Quote(p.remoteArchive()), p.sum, bundleComplete, host.Quote(dir), extract)
	if _, err := h.RunWithInput(ctx, script, []byte(sums.String())); err != nil {
		return fmt.Errorf("unpack the bundle: %w", err)
	}
	return nil
}

// extractCommand is the command line that extracts the archive into dir:
// the host's tar for gzip; for zstd, kube-unpack over SSH, kubeforge
// itself on the machine it runs on.
func (p *bundlePhase) extractCommand(h *host.Host, dir string) (string, error) {
	archive := host.Quote(p.remoteArchive())
	switch {
	case !p.zstd:
		return fmt.Sprintf("tar -xzf %s -C %s", archive, host.Quote(dir)), nil
	case h.Spec.Local:
		exe, err := selfExecutable()
		if err != nil {
			return "", fmt.Errorf("unpack the bundle with this kubeforge: %w", err)
		}
		return fmt.Sprintf("%s %s -C %s < %s", host.Quote(exe), LocalUnpackCommand, host.Quote(dir), archive), nil
	}
	return fmt.Sprintf("%s -C %s < %s", host.Quote(BundleUnpacker), host.Quote(dir), archive), nil
}

// binaryID names the binary a service runs (its sha256 in the bundle).
// It is in the service's unit, so a new binary restarts the service and
// nothing else does.
func binaryID(env *Env, program string) string {
	if env.Bundle == nil {
		return "none"
	}
	f, _, ok := env.Bundle.Program(program)
	if !ok {
		return "none"
	}
	return program + "@sha256:" + f.SHA256[:16]
}
