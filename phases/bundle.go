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
	// BundleArchiveDir holds what an unpack needs beside the archive:
	// kube-unpack and the list of the files' sums. The archive itself is
	// streamed to kube-unpack, never written on the host.
	BundleArchiveDir = "/var/lib/kubeforge/bundle"
	// BundleRoot holds one directory per unpacked bundle, by archive sum,
	// and "current" pointing at the one in use.
	BundleRoot = "/opt/kubeforge"
	// bundleComplete marks a fully unpacked and verified bundle.
	bundleComplete = ".complete"
	// BundleUnpacker is kube-unpack on a host: hosts have no zstd program,
	// and it checks every file's sum as it writes it. Not in /tmp, which
	// may be mounted noexec.
	BundleUnpacker = BundleArchiveDir + "/kube-unpack"
	// LocalUnpackCommand is the kubeforge command that unpacks an archive
	// on the machine kubeforge runs on (a node joining on its own has the
	// kubeforge binary and the archive, no kube-unpack): the same code
	// as kube-unpack, "-C DIR --sha256 SUM --check SUMS < ARCHIVE".
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

// bundlePhase streams the compressed bundle to each host that does not
// have it unpacked, where it is unpacked and verified in one pass.
type bundlePhase struct {
	env     *Env
	archive string // local path
	sum     string // its sha256, hashed once for every host
	size    int64
	// unpacker is kube-unpack on this machine, for the hosts reached over
	// SSH; unpackerErr why there is none (a node joining on its own has
	// only the archive, and needs none).
	unpacker    string
	unpackerErr error
	// stage unpacks without pointing current at it (an upgrade unpacks on
	// every host at once, and switches each host in its own turn).
	stage bool
}

func (p *bundlePhase) Title() string {
	if p.stage {
		return "Upload and unpack the new bundle beside the one running"
	}
	return "Upload and unpack the component bundle"
}

// Prepare hashes the archive once for all hosts (the state directory
// remembers the sum of an archive it has seen).
func (p *bundlePhase) Prepare(context.Context) error {
	if p.env.Bundle == nil {
		return fmt.Errorf("no bundle: build one with 'make bundle' or pass --bundle")
	}
	p.archive = filepath.Join(p.env.BundleDir, p.env.Bundle.Archive)
	hash := bundle.HashFile
	if p.env.StateDir != "" {
		hash = p.env.StateDir.ArchiveSum
	}
	var err error
	if p.sum, p.size, err = hash(p.archive); err != nil {
		return fmt.Errorf("bundle archive: %w", err)
	}
	p.unpackerErr = p.checkUnpacker(hash)
	return nil
}

// checkUnpacker finds kube-unpack beside the manifest and checks it
// against it.
func (p *bundlePhase) checkUnpacker(hash func(string) (string, int64, error)) error {
	u := p.env.Bundle.Unpacker
	if u == nil {
		return fmt.Errorf("the bundle's manifest names no unpacker for its archive %s: rebuild it with this tree's 'make bundle'", p.env.Bundle.Archive)
	}
	local := filepath.Join(p.env.BundleDir, u.Path)
	sum, _, err := hash(local)
	if err != nil {
		return fmt.Errorf("the bundle needs its unpacker beside the archive: %w (copy %s from the bundle's directory too)", err, u.Path)
	}
	if sum != u.SHA256 {
		return fmt.Errorf("%s has sha256 %s, the manifest says %s: copy the bundle's directory again", local, sum, u.SHA256)
	}
	p.unpacker = local
	return nil
}

// needsUnpacker: the host unpacks with kube-unpack, uploaded to it (the
// machine kubeforge runs on uses kubeforge itself).
func (p *bundlePhase) needsUnpacker(h *host.Host) bool { return !h.Spec.Local }

func (p *bundlePhase) unpackDir() string { return path.Join(BundleRoot, p.sum[:16]) }

// sumsFile is the list of the files' sums the unpack checks.
func (p *bundlePhase) sumsFile() string { return path.Join(BundleArchiveDir, p.sum[:16]+".sha256sums") }

// bundleState is what a host has of the bundle.
type bundleState struct {
	unpacked, current bool
	// unpackerOK: the host has kube-unpack, this one, 0755 root's.
	unpackerOK bool
}

// state reports what the host has, in one round trip: the unpacked
// bundle, whether it is current, and the unpacker (hashed only when the
// bundle is not unpacked already).
func (p *bundlePhase) state(ctx context.Context, h *host.Host) (bundleState, error) {
	script := fmt.Sprintf(`complete=$(cat %[1]s 2>/dev/null)
echo "complete=$complete"
echo "current=$(readlink %[2]s)"`,
		host.Quote(path.Join(p.unpackDir(), bundleComplete)), host.Quote(CurrentBundle()))
	if p.needsUnpacker(h) {
		script += fmt.Sprintf("\n[ \"$complete\" = %[2]s ] || [ ! -f %[1]s ] || echo \"unpacker=$(sha256sum < %[1]s | cut -d' ' -f1) $(stat -c '%%a %%U:%%G' %[1]s)\"; true",
			host.Quote(BundleUnpacker), p.sum)
	}
	out, err := h.Run(ctx, script)
	if err != nil {
		return bundleState{}, err
	}
	var st bundleState
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
	if !st.unpacked {
		switch {
		case !p.needsUnpacker(h):
		case p.unpackerErr != nil:
			return nil, p.unpackerErr
		case !st.unpackerOK:
			plan = append(plan, fmt.Sprintf("upload the unpacker %s (%.1f MiB) to %s", p.env.Bundle.Unpacker.Path,
				float64(p.env.Bundle.Unpacker.Size)/(1<<20), BundleUnpacker))
		}
		plan = append(plan, fmt.Sprintf("stream %s (%.1f MiB) to the host, unpacking and verifying it in %s",
			p.env.Bundle.Archive, float64(p.size)/(1<<20), p.unpackDir()))
	}
	if !st.current && !p.stage {
		plan = append(plan, "point "+CurrentBundle()+" at it, and remove the bundles older than the one it replaces")
	}
	return plan, nil
}

func (p *bundlePhase) Run(ctx context.Context, h *host.Host) error {
	st, err := p.state(ctx, h)
	if err != nil {
		return err
	}
	if !st.unpacked {
		if p.needsUnpacker(h) {
			if p.unpackerErr != nil {
				return p.unpackerErr // before the long upload
			}
			if !st.unpackerOK {
				if _, err := h.Upload(ctx, p.unpacker, BundleUnpacker, p.env.Bundle.Unpacker.SHA256, host.FileMode{Perm: 0o755}); err != nil {
					return err
				}
			}
		}
		if err := p.unpack(ctx, h); err != nil {
			return err
		}
	}
	if !st.current && !p.stage {
		if _, err := h.Run(ctx, p.switchScript()); err != nil {
			return err
		}
	}
	return nil
}

// switchScript points current at the unpacked bundle, atomically, and
// removes the unpacked bundles other than it and the one current pointed
// at before (with their lists of sums): a host keeps what it runs and
// what it ran last, not every bundle of every upgrade. Only directories
// named by a sum's 16 hex digits go.
func (p *bundlePhase) switchScript() string {
	return fmt.Sprintf(`set -e
prev=$(readlink %[2]s || true)
ln -sfn %[1]s %[2]s.kubeforge-new
mv -Tf %[2]s.kubeforge-new %[2]s
for d in %[3]s/*; do
	b=${d##*/}
	case "$b" in *[!0-9a-f]*) continue ;; esac
	[ ${#b} -eq 16 ] && [ -d "$d" ] && [ ! -L "$d" ] || continue
	[ "$d" = %[1]s ] || [ "$d" = "$prev" ] && continue
	rm -rf "$d" %[4]s/"$b".sha256sums
done`, host.Quote(p.unpackDir()), host.Quote(CurrentBundle()), host.Quote(BundleRoot), host.Quote(BundleArchiveDir))
}

// unpack streams the archive to the host's unpacker, which extracts it
// into a temporary directory checking the stream's and every file's
// sum as it writes them (the host reads nothing twice), then renames
// the directory into place. An archive an earlier kubeforge kept on the
// host goes.
func (p *bundlePhase) unpack(ctx context.Context, h *host.Host) error {
	var sums strings.Builder
	for _, f := range p.env.Bundle.Files {
		fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Path)
	}
	for _, img := range p.env.Bundle.Images {
		fmt.Fprintf(&sums, "%s  %s\n", img.SHA256, img.Path)
	}
	if err := h.PutAll(ctx, []host.Write{{Path: p.sumsFile(), Data: []byte(sums.String()), Mode: host.FileMode{Perm: 0o644}}}); err != nil {
		return fmt.Errorf("unpack the bundle: %w", err)
	}
	unpacker, err := p.unpackerCommand(h)
	if err != nil {
		return err
	}
	dir, tmp := p.unpackDir(), p.unpackDir()+".unpacking"
	script := fmt.Sprintf(`set -e
rm -rf %[1]s
%[2]s -C %[1]s --sha256 %[3]s --check %[4]s
echo %[3]s > %[1]s/%[5]s
rm -rf %[6]s
mv -T %[1]s %[6]s
rm -f %[7]s/*.tar.zst %[7]s/*.tar.gz`, host.Quote(tmp), unpacker, p.sum, host.Quote(p.sumsFile()), bundleComplete,
		host.Quote(dir), host.Quote(BundleArchiveDir))
	f, err := os.Open(p.archive)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := h.RunWithReader(ctx, script, f); err != nil {
		return fmt.Errorf("unpack the bundle: %w", err)
	}
	return nil
}

// unpackerCommand is the program that unpacks the archive on h:
// kube-unpack over SSH, kubeforge itself on the machine it runs on.
func (p *bundlePhase) unpackerCommand(h *host.Host) (string, error) {
	if !h.Spec.Local {
		return host.Quote(BundleUnpacker), nil
	}
	exe, err := selfExecutable()
	if err != nil {
		return "", fmt.Errorf("unpack the bundle with this kubeforge: %w", err)
	}
	return host.Quote(exe) + " " + LocalUnpackCommand, nil
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
