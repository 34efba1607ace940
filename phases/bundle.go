package phases

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/kubeforge/kubeforge/components/bundle"
	"github.com/kubeforge/kubeforge/components/bundle/peer"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// Where the bundle lives on a host.
const (
	// BundleArchiveDir holds what an unpack needs beside the archive:
	// kube-unpack and the list of the files' sums. The archive itself is
	// streamed to kube-unpack; only a control plane keeps a copy, in
	// KeptArchiveDir, for the hosts that join later.
	BundleArchiveDir = "/var/lib/kubeforge/bundle"
	// KeptArchiveDir holds a control plane's copies of the archives it
	// unpacked (by sum), which it serves to a joining host (kube-unpack
	// -serve): the archive crosses the admin machine's link once.
	KeptArchiveDir = BundleArchiveDir + "/archives"
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

// keptArchive is a control plane's copy of the archive.
func (p *bundlePhase) keptArchive() string { return path.Join(KeptArchiveDir, p.sum[:16]+".tar.zst") }

// keeps: a control plane keeps the archive it unpacks, to serve it to
// the hosts that join later.
func keeps(h *host.Host) bool { return h.Spec.Has(config.RoleControlPlane) }

// peers are the hosts h may fetch the archive from: in a run narrowed
// to some hosts (a join), the control planes it does not touch, reached
// over SSH (only those have kube-unpack to serve with), each joining
// host starting from another. Init and upgrades, which unpack on every
// host at once, have none.
func (p *bundlePhase) peers(h *host.Host) []*config.Host {
	if len(p.env.Targets) == 0 || !p.needsUnpacker(h) || p.env.Connect == nil {
		return nil
	}
	var out []*config.Host
	for _, cp := range p.env.Cluster.HostsWith(config.RoleControlPlane) {
		if !cp.Local && !slices.Contains(p.env.Targets, cp.Name) {
			out = append(out, cp)
		}
	}
	// Hosts joining together start from different control planes, in
	// turn: each control plane sends the archive to a share of them.
	if i := slices.Index(p.env.Targets, h.Name()); i > 0 && len(out) > 1 {
		i %= len(out)
		out = append(out[i:], out[:i]...)
	}
	return out
}

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
		how := "stream %s (%.1f MiB) to the host"
		if peers := p.peers(h); len(peers) > 0 {
			how = "fetch %s (%.1f MiB) from a control plane that keeps it (" + hostNames(peers) + "), or stream it from this machine"
		}
		plan = append(plan, fmt.Sprintf(how+", unpacking and verifying it in %s",
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
		if err := p.putSums(ctx, h); err != nil {
			return err
		}
		if err := p.unpackFromPeer(ctx, h); err != nil {
			if err := p.unpack(ctx, h, "", nil); err != nil {
				return err
			}
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
	rm -rf "$d" %[4]s/"$b".sha256sums %[5]s/"$b".tar.zst
done`, host.Quote(p.unpackDir()), host.Quote(CurrentBundle()), host.Quote(BundleRoot), host.Quote(BundleArchiveDir),
		host.Quote(KeptArchiveDir))
}

// putSums writes the list of the files' sums the unpack checks, once
// for a fetch from a peer and the stream after it.
func (p *bundlePhase) putSums(ctx context.Context, h *host.Host) error {
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
	return nil
}

// unpack has the host's unpacker read the archive, from this machine's
// stream (from "") or from a peer's server (from its IP:PORT, the token
// on stdin), and extract it into a temporary directory checking the
// stream's and every file's sum as it writes them (the host reads
// nothing twice), then rename the directory into place. A control plane
// keeps a copy of the checked archive. An archive an earlier kubeforge
// kept beside kube-unpack goes.
func (p *bundlePhase) unpack(ctx context.Context, h *host.Host, from string, stdin io.Reader) error {
	unpacker, err := p.unpackerCommand(h)
	if err != nil {
		return err
	}
	var opts string
	if keeps(h) {
		opts += " --keep " + host.Quote(p.keptArchive())
	}
	if from != "" {
		opts += " --from " + host.Quote(from)
	}
	dir, tmp := p.unpackDir(), p.unpackDir()+".unpacking"
	script := fmt.Sprintf(`set -e
rm -rf %[1]s
mkdir -p -m 0755 %[8]s
%[2]s -C %[1]s --sha256 %[3]s --check %[4]s%[9]s
echo %[3]s > %[1]s/%[5]s
rm -rf %[6]s
mv -T %[1]s %[6]s
rm -f %[7]s/*.tar.zst %[7]s/*.tar.gz`, host.Quote(tmp), unpacker, p.sum, host.Quote(p.sumsFile()), bundleComplete,
		host.Quote(dir), host.Quote(BundleArchiveDir), host.Quote(KeptArchiveDir), opts)
	if stdin == nil {
		f, err := os.Open(p.archive)
		if err != nil {
			return err
		}
		defer f.Close()
		stdin = f
	}
	if _, err := h.RunWithReader(ctx, script, stdin); err != nil {
		return fmt.Errorf("unpack the bundle: %w", err)
	}
	return nil
}

// unpackFromPeer has h fetch the archive from a control plane that keeps
// it (kube-unpack -serve there, -from on h), so that it does not cross
// this machine's link again. Any failure (no peer, an older peer without
// the archive, a firewall between the two) is logged and returned: the
// caller streams the archive itself.
func (p *bundlePhase) unpackFromPeer(ctx context.Context, h *host.Host) error {
	peers := p.peers(h)
	if len(peers) == 0 {
		return errors.New("no control plane to fetch from")
	}
	tok, err := peer.NewToken()
	if err != nil {
		return err
	}
	var errs *multierror.Error
	for _, spec := range peers {
		src, err := p.env.Connect(ctx, spec)
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		ip := spec.ClusterAddress()
		out, err := src.RunWithInput(ctx, fmt.Sprintf("%s -serve %s -listen %s -clients 1 -for 10m",
			host.Quote(BundleUnpacker), host.Quote(p.keptArchive()), host.Quote(ip.String())), []byte(tok+"\n"))
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		port, pid, err := parseServer(string(out))
		if err != nil {
			errs = multierror.Append(errs, src.Errorf("kube-unpack -serve: %w", err))
			continue
		}
		from := netip.AddrPortFrom(ip, port).String()
		if err := p.unpack(ctx, h, from, strings.NewReader(tok+"\n")); err != nil {
			// The server waits for its one transfer: end it.
			_, _ = src.Run(ctx, "kill "+strconv.Itoa(pid)+" 2>/dev/null || true")
			errs = multierror.Append(errs, fmt.Errorf("from %s: %w", spec.Name, err))
			break // the host's side failed: another peer would fail alike
		}
		p.env.Log.Info("bundle fetched from a control plane", "host", h.Name(), "from", spec.Name, "addr", from)
		return nil
	}
	err = errs.ErrorOrNil()
	p.env.Log.Warn("bundle: no control plane could serve the archive; streaming it from this machine", "host", h.Name(), "error", err)
	return err
}

// hostNames lists the hosts' names, comma-separated.
func hostNames(hosts []*config.Host) string {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	return strings.Join(names, ", ")
}

// parseServer reads kube-unpack -serve's "PORT PID".
func parseServer(out string) (port uint16, pid int, err error) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("printed %q, not \"PORT PID\"", out)
	}
	n, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("printed %q: not a port", out)
	}
	if pid, err = strconv.Atoi(f[1]); err != nil || pid <= 1 {
		return 0, 0, fmt.Errorf("printed %q: not a pid", out)
	}
	return uint16(n), pid, nil
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
