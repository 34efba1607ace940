package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
	"github.com/kubeforge/kubeforge/internal/config"
)

// Host is one machine of the cluster, connected.
type Host struct {
	// Spec is the host as the cluster file describes it.
	Spec *config.Host
	// facts are what was observed on it, gathered once (Facts).
	facts   *Facts
	factsMu sync.Mutex

	// Log receives every command run, at debug level.
	Log *slog.Logger

	t    Transport
	sudo sudo
}

// New wraps a transport; tests pass a scripted one.
func New(spec *config.Host, t Transport) *Host { return &Host{Spec: spec, t: t} }

// Name is the host's name in the cluster file.
func (h *Host) Name() string { return h.Spec.Name }

// String names the host in messages: "lab2 (172.30.0.12)".
func (h *Host) String() string { return h.Spec.Label() }

// Dial opens a TCP connection from the host itself (through SSH), so a
// port that answers only there can be reached.
func (h *Host) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d, ok := h.t.(interface {
		Dial(context.Context, string) (net.Conn, error)
	})
	if !ok {
		return nil, h.Errorf("its transport cannot open connections")
	}
	conn, err := d.Dial(ctx, addr)
	if err != nil {
		return nil, h.Errorf("connect to %s from the host: %w", addr, err)
	}
	return conn, nil
}

// Close ends the connection.
func (h *Host) Close() error { return h.t.Close() }

// CommandError is a command that exited non-zero on a host.
type CommandError struct {
	Name     string // the host's name
	Host     string // its label
	Cmd      string
	ExitCode int
	Stderr   string
}

func (e *CommandError) HostName() string { return e.Name }

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "no error output"
	}
	return fmt.Sprintf("host %s: `%s` exited %d: %s", e.Host, shorten(e.Cmd, 120), e.ExitCode, msg)
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// Run runs cmd as root and returns its standard output; a non-zero exit
// is a *CommandError carrying stderr.
func (h *Host) Run(ctx context.Context, cmd string) (string, error) {
	out, err := h.RunWithInput(ctx, cmd, nil)
	return string(out), err
}

// RunWithInput is Run with data on the command's standard input.
func (h *Host) RunWithInput(ctx context.Context, cmd string, stdin []byte) ([]byte, error) {
	var r io.Reader // no input: none to stream (Transport.Run takes nil)
	if len(stdin) > 0 {
		r = bytes.NewReader(stdin)
	}
	return h.RunWithReader(ctx, cmd, r)
}

// RunWithReader is Run with the command's standard input streamed from
// r, for input too large to hold in memory (the bundle's archive).
func (h *Host) RunWithReader(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	line, input := h.sudo.wrap(cmd, stdin)
	start := time.Now()
	res, err := h.t.Run(ctx, line, input)
	if h.Log != nil {
		h.Log.Debug("run", "host", h.Spec.Name, "cmd", cmd, "exit", res.ExitCode, "duration", time.Since(start),
			"stderr", string(res.Stderr), "error", err)
	}
	if err != nil {
		return res.Stdout, h.Wrap(err)
	}
	if res.ExitCode != 0 {
		return res.Stdout, &CommandError{Name: h.Spec.Name, Host: h.String(), Cmd: cmd, ExitCode: res.ExitCode, Stderr: h.sudo.scrub(string(res.Stderr))}
	}
	return res.Stdout, nil
}

// Check runs cmd as root and reports whether it exited 0; for tests
// ("is this installed?") whose failure is an answer, not an error.
func (h *Host) Check(ctx context.Context, cmd string) (bool, error) {
	_, err := h.Run(ctx, cmd)
	var ce *CommandError
	if errors.As(err, &ce) {
		return false, nil
	}
	return err == nil, err
}

// RunAsUser runs cmd as the login user, without sudo.
func (h *Host) RunAsUser(ctx context.Context, cmd string) (string, error) {
	res, err := h.t.Run(ctx, cmd, nil)
	if err != nil {
		return "", h.Wrap(err)
	}
	if res.ExitCode != 0 {
		return string(res.Stdout), &CommandError{Name: h.Spec.Name, Host: h.String(), Cmd: cmd, ExitCode: res.ExitCode, Stderr: string(res.Stderr)}
	}
	return string(res.Stdout), nil
}

// ReadFile returns a file's content; os.ErrNotExist when it is missing.
func (h *Host) ReadFile(ctx context.Context, p string) ([]byte, error) {
	out, err := h.RunWithInput(ctx, "if [ -e "+quote(p)+" ]; then cat "+quote(p)+"; else exit 3; fi", nil)
	var ce *CommandError
	if errors.As(err, &ce) && ce.ExitCode == 3 {
		return nil, h.Errorf("%s: %w", p, os.ErrNotExist)
	}
	return out, err
}

// FileMode is a remote file's permissions and owner.
type FileMode struct {
	Perm  os.FileMode
	Owner string // "root:root"
}

// WriteFile makes p hold data with mode, atomically (a temporary file in
// the same directory, renamed). It returns false, writing nothing, when the
// file already has that content and mode.
func (h *Host) WriteFile(ctx context.Context, p string, data []byte, mode FileMode) (bool, error) {
	want := SumOf(data)
	same, err := h.sameFile(ctx, p, want, mode)
	if err != nil || same {
		return false, err
	}
	return true, h.put(ctx, bytes.NewReader(data), p, want, mode)
}

// Upload copies a local file to p unless p already has its sha256 (given,
// to hash big files once for all hosts). It returns whether it copied.
func (h *Host) Upload(ctx context.Context, local, p, sha string, mode FileMode) (bool, error) {
	same, err := h.sameFile(ctx, p, sha, mode)
	if err != nil || same {
		return false, err
	}
	f, err := os.Open(local)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return true, h.put(ctx, f, p, sha, mode)
}

func (h *Host) sameFile(ctx context.Context, p, sha string, mode FileMode) (bool, error) {
	states, err := h.FileStates(ctx, []string{p})
	if err != nil {
		return false, err
	}
	return states[p].Matches(sha, mode), nil
}

// FileState is a remote file's sum, mode and owner ("" sum: missing).
type FileState struct {
	SHA256 string
	Perm   string // octal, "644"
	Owner  string // "root:root"
}

// Matches reports whether the file has this content and mode.
func (s FileState) Matches(sha string, mode FileMode) bool {
	return s.SHA256 == sha && s.Perm == fmt.Sprintf("%o", mode.Perm) && s.Owner == mode.owner()
}

// FileStates reads the state of many files in one round trip.
func (h *Host) FileStates(ctx context.Context, paths []string) (map[string]FileState, error) {
	var script strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&script, "if [ -f %[1]s ]; then echo \"$(sha256sum < %[1]s | cut -d' ' -f1) $(stat -c '%%a %%U:%%G' %[1]s)\"; else echo -; fi\n", quote(p))
	}
	out, err := h.Run(ctx, script.String())
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(paths) > 0 && len(lines) != len(paths) {
		return nil, h.Errorf("file states: %d answers for %d files", len(lines), len(paths))
	}
	states := make(map[string]FileState, len(paths))
	for i, p := range paths {
		f := strings.Fields(lines[i])
		if len(f) == 3 {
			states[p] = FileState{SHA256: f[0], Perm: f[1], Owner: f[2]}
		} else {
			states[p] = FileState{}
		}
	}
	return states, nil
}

// SumOf is the hex sha256 of data, as FileState reports it.
func SumOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (m FileMode) owner() string {
	if m.Owner == "" {
		return "root:root"
	}
	return m.Owner
}

// Put writes data to p unconditionally (atomic, like WriteFile).
func (h *Host) Put(ctx context.Context, p string, data []byte, mode FileMode) error {
	return h.put(ctx, bytes.NewReader(data), p, SumOf(data), mode)
}

// put writes one file: staged, then renamed into place.
func (h *Host) put(ctx context.Context, r io.Reader, p, sha string, mode FileMode) error {
	tmp, err := h.stage(ctx, r, p, sha, mode)
	if err != nil {
		return err
	}
	return h.commit(ctx, map[string]string{tmp: p})
}

// Download copies a file of the host (any owner) to local, atomically,
// and checks its sha256 against the host's. It returns the sum.
func (h *Host) Download(ctx context.Context, remote, local string) (string, error) {
	uid, err := h.RunAsUser(ctx, "id -u")
	if err != nil {
		return "", err
	}
	stage := "/tmp/.kubeforge-" + randomSuffix()
	out, err := h.Run(ctx, fmt.Sprintf("set -e\ninstall -m 600 -o %s %s %s\nsha256sum < %s | cut -d' ' -f1",
		quote(strings.TrimSpace(uid)), quote(remote), quote(stage), quote(stage)))
	defer h.Run(context.WithoutCancel(ctx), "rm -f "+quote(stage)) //nolint:errcheck // best effort
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", remote, err)
	}
	want := strings.TrimSpace(out)
	var got string
	err = atomicfile.WriteFunc(local, 0o600, 0o700, func(w io.Writer) error {
		hw := sha256.New()
		if err := h.t.Get(ctx, stage, io.MultiWriter(w, hw)); err != nil {
			return h.Errorf("download %s: %w", remote, err)
		}
		got = hex.EncodeToString(hw.Sum(nil))
		if got != want {
			return h.Errorf("download %s: corrupted in transit (sha256 %s, the host has %s)", remote, got, want)
		}
		return nil
	})
	return got, err
}

// Write is one file of PutAll.
type Write struct {
	Path string
	Data []byte
	Mode FileMode
}

// PutAll writes several files so that a host never holds some of them
// new and some old: each is staged next to its target first, and only
// when all are there are they renamed into place, in one command. A
// certificate and its key change together.
func (h *Host) PutAll(ctx context.Context, files []Write) error {
	staged := map[string]string{}
	for _, f := range files {
		tmp, err := h.stage(ctx, bytes.NewReader(f.Data), f.Path, SumOf(f.Data), f.Mode)
		if err != nil {
			h.discard(ctx, staged)
			return err
		}
		staged[tmp] = f.Path
	}
	return h.commit(ctx, staged)
}

// stage uploads r to a private temporary file as the login user, checks
// its sha256, then as root installs it beside p (same directory, same
// file system) and returns that path.
func (h *Host) stage(ctx context.Context, r io.Reader, p, sha string, mode FileMode) (string, error) {
	upload := "/tmp/.kubeforge-" + randomSuffix()
	if err := h.t.Put(ctx, r, upload); err != nil {
		_, _ = h.RunAsUser(context.WithoutCancel(ctx), "rm -f "+quote(upload))
		return "", h.Errorf("upload %s: %w", p, err)
	}
	owner, group, _ := strings.Cut(mode.owner(), ":")
	tmp := path.Join(path.Dir(p), "."+path.Base(p)+".kubeforge-"+randomSuffix())
	// Staged copies of p that a killed run left behind go first: they are
	// kubeforge's by their name, and nothing else writes p at the same time.
	stale := quote(path.Join(path.Dir(p), "."+path.Base(p)+".kubeforge-")) + "*"
	script := fmt.Sprintf(`set -e
trap 'rm -f %[1]s' EXIT
if [ "$(sha256sum < %[1]s | cut -d' ' -f1)" != %[3]s ]; then echo "upload corrupted in transit" >&2; exit 1; fi
mkdir -p %[4]s
rm -f %[8]s
install -m %[5]o -o %[6]s -g %[7]s %[1]s %[2]s`, quote(upload), quote(tmp), quote(sha), quote(path.Dir(p)), mode.Perm, quote(owner), quote(group), stale)
	if _, err := h.Run(ctx, script); err != nil {
		_, _ = h.Run(context.WithoutCancel(ctx), "rm -f "+quote(tmp))
		return "", fmt.Errorf("install %s: %w", p, err)
	}
	return tmp, nil
}

// commit renames staged files over their targets in one command.
func (h *Host) commit(ctx context.Context, staged map[string]string) error {
	if len(staged) == 0 {
		return nil
	}
	tmps := make([]string, 0, len(staged))
	for tmp := range staged {
		tmps = append(tmps, tmp)
	}
	sort.Strings(tmps)
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, tmp := range tmps {
		fmt.Fprintf(&script, "mv -f %s %s\n", quote(tmp), quote(staged[tmp]))
	}
	if _, err := h.Run(ctx, script.String()); err != nil {
		h.discard(ctx, staged)
		return fmt.Errorf("put %d files in place: %w", len(staged), err)
	}
	return nil
}

// discard removes staged files that will not be committed.
func (h *Host) discard(ctx context.Context, staged map[string]string) {
	if len(staged) == 0 {
		return
	}
	var cmd strings.Builder
	cmd.WriteString("rm -f")
	for tmp := range staged {
		cmd.WriteString(" " + quote(tmp))
	}
	_, _ = h.Run(context.WithoutCancel(ctx), cmd.String())
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// quote makes s one word for sh.
func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@%,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Quote is quote for callers that build command lines.
func Quote(s string) string { return quote(s) }
