package phases

import (
	"context"
	"fmt"
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
)

// CurrentBundle is the unpacked bundle the hosts' components run from.
func CurrentBundle() string { return path.Join(BundleRoot, "current") }

// bundlePhase uploads the compressed bundle (skipped when the host has it
// already) and unpacks and verifies it.
type bundlePhase struct {
	env     *Env
	archive string // local path
	sum     string // its sha256, hashed once for every host
	size    int64
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
	return nil
}

func (p *bundlePhase) remoteArchive() string {
	return path.Join(BundleArchiveDir, p.env.Bundle.Archive)
}
func (p *bundlePhase) unpackDir() string { return path.Join(BundleRoot, p.sum[:16]) }

// state reports what the host has: the archive, and the unpacked bundle.
func (p *bundlePhase) state(ctx context.Context, h *host.Host) (archived, unpacked, current bool, err error) {
	// One round trip for the three answers. The archive (76 MiB) is
	// hashed only when its bundle is not unpacked and verified already
	// (the unpack checked it, file by file): hashing it on every host on
	// every run cost each a quarter of a core-second.
	out, err := h.Run(ctx, fmt.Sprintf(`complete=$(cat %[2]s 2>/dev/null)
echo "complete=$complete"
echo "current=$(readlink %[3]s)"
if [ "$complete" = %[4]s ]; then [ -s %[1]s ] && echo "archive=%[4]s"; else echo "archive=$(sha256sum < %[1]s 2>/dev/null | cut -d' ' -f1)"; fi; true`,
		host.Quote(p.remoteArchive()), host.Quote(path.Join(p.unpackDir(), bundleComplete)), host.Quote(CurrentBundle()),
		p.sum))
	if err != nil {
		return false, false, false, err
	}
	archived = strings.Contains(out, "archive="+p.sum+"\n")
	unpacked = strings.Contains(out, "complete="+p.sum+"\n")
	current = strings.Contains(out, "current="+p.unpackDir()+"\n")
	return archived, unpacked, current, nil
}

func (p *bundlePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	archived, unpacked, current, err := p.state(ctx, h)
	if err != nil {
		return nil, err
	}
	var plan []string
	if !archived {
		plan = append(plan, fmt.Sprintf("upload %s (%.1f MiB) to %s", p.env.Bundle.Archive, float64(p.size)/(1<<20), BundleArchiveDir))
	}
	if !unpacked {
		plan = append(plan, "unpack and verify it in "+p.unpackDir())
	}
	if !current {
		plan = append(plan, "point "+CurrentBundle()+" at it")
	}
	return plan, nil
}

func (p *bundlePhase) Run(ctx context.Context, h *host.Host) error {
	archived, unpacked, current, err := p.state(ctx, h)
	if err != nil {
		return err
	}
	if !archived {
		if _, err := h.Upload(ctx, p.archive, p.remoteArchive(), p.sum, host.FileMode{Perm: 0o644}); err != nil {
			return err
		}
	}
	if !unpacked {
		if err := p.unpack(ctx, h); err != nil {
			return err
		}
	}
	if !current {
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
	script := fmt.Sprintf(`set -e
rm -rf %[1]s
mkdir -p %[1]s
tar -xzf %[2]s -C %[1]s
cd %[1]s
sha256sum -c --quiet --strict
echo %[3]s > %[4]s
rm -rf %[5]s
mv -T %[1]s %[5]s`, host.Quote(tmp), host.Quote(p.remoteArchive()), p.sum, bundleComplete, host.Quote(dir))
	if _, err := h.RunWithInput(ctx, script, []byte(sums.String())); err != nil {
		return fmt.Errorf("unpack the bundle: %w", err)
	}
	return nil
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
