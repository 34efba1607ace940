package phases

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/kubeforge/kubeforge/internal/host"
)

// unitPerm is every systemd unit kubeforge writes: root's alone, as the
// CIS benchmark asks of the files that hold a component's flags.
const unitPerm = 0o600

// File is a file kubeforge keeps on a host.
type File struct {
	Path string
	Data []byte
	Mode host.FileMode
	// Pending marks a file whose content does not exist yet (a dry run
	// before the PKI was made): it always counts as a change.
	Pending bool
}

// Service is a systemd service kubeforge runs. It is (re)started when its
// unit or any of its inputs changed, or when it is not running.
type Service struct {
	Name   string   // "etcd": the unit is etcd.service
	Unit   []byte   // the unit file
	Inputs []string // files whose change restarts it
	// Reload: a running service re-reads changed inputs on
	// `systemctl reload` (keepalived keeps the VIP through it).
	Reload bool
}

// UnitPath is where a service's unit file goes.
func UnitPath(name string) string { return path.Join("/etc/systemd/system", name+".service") }

// Desired is what one phase keeps on one host: files, and the services
// that use them. Plan and Apply share it, so --dry-run reports exactly
// what a run would do.
type Desired struct {
	Files    []File
	Services []Service
}

func (d Desired) allFiles() []File {
	out := append([]File(nil), d.Files...)
	for _, s := range d.Services {
		if s.Unit != nil { // nil: the unit comes with a package
			out = append(out, File{Path: UnitPath(s.Name), Data: s.Unit, Mode: host.FileMode{Perm: unitPerm}})
		}
	}
	return out
}

// Changes is what differs between a host and the desired state.
type Changes struct {
	Files    []string // paths to write
	Restart  []string // services whose inputs change
	Reload   []string // running services that re-read their changed inputs
	Start    []string // services not running
	Reloaded bool     // a unit file changes
}

// Empty reports whether the host is up to date.
func (c Changes) Empty() bool { return len(c.Files)+len(c.Restart)+len(c.Reload)+len(c.Start) == 0 }

// Lines describes the changes for --dry-run.
func (c Changes) Lines() []string {
	var out []string
	for _, f := range c.Files {
		out = append(out, "write "+f)
	}
	for _, s := range c.Restart {
		out = append(out, "restart "+s)
	}
	for _, s := range c.Reload {
		out = append(out, "reload "+s)
	}
	for _, s := range c.Start {
		out = append(out, "start "+s)
	}
	return out
}

// Diff compares the host with d in two round trips. changedBefore are
// files another Desired of the same phase writes first (certificates
// shared by several services): services with them as inputs restart too.
func (d Desired) Diff(ctx context.Context, h *host.Host, changedBefore ...string) (Changes, error) {
	files := d.allFiles()
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	states, err := h.FileStates(ctx, paths)
	if err != nil {
		return Changes{}, err
	}
	var c Changes
	for _, f := range files {
		if f.Pending || !states[f.Path].Matches(host.SumOf(f.Data), f.Mode) {
			c.Files = append(c.Files, f.Path)
			if strings.HasPrefix(f.Path, "/etc/systemd/system/") {
				c.Reloaded = true
			}
		}
	}
	if len(d.Services) == 0 {
		return c, nil
	}
	active, err := servicesActive(ctx, h, d.Services)
	if err != nil {
		return Changes{}, err
	}
	for _, s := range d.Services {
		inputs := append([]string{UnitPath(s.Name)}, s.Inputs...)
		changed := func(p string) bool { return slices.Contains(c.Files, p) || slices.Contains(changedBefore, p) }
		switch {
		case slices.ContainsFunc(inputs, changed) && s.Reload && active[s.Name] && !changed(UnitPath(s.Name)):
			c.Reload = append(c.Reload, s.Name)
		case slices.ContainsFunc(inputs, changed):
			c.Restart = append(c.Restart, s.Name)
		case !active[s.Name]:
			c.Start = append(c.Start, s.Name)
		}
	}
	return c, nil
}

func servicesActive(ctx context.Context, h *host.Host, svcs []Service) (map[string]bool, error) {
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.Name + ".service"
	}
	// is-active prints one state per unit and exits non-zero if any is
	// not active: read the lines, not the exit code.
	out, err := h.Run(ctx, "systemctl is-active "+strings.Join(names, " ")+" || true")
	if err != nil {
		return nil, err
	}
	states := strings.Fields(out)
	active := map[string]bool{}
	for i, s := range svcs {
		active[s.Name] = i < len(states) && states[i] == "active"
	}
	return active, nil
}

// Plan is Diff as --dry-run lines.
func (d Desired) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	c, err := d.Diff(ctx, h)
	if err != nil {
		return nil, err
	}
	return c.Lines(), nil
}

// planOf is the plan of a desired state a phase builds, or the error
// building it gave: planOf(ctx, h)(p.desired(h)).
func planOf(ctx context.Context, h *host.Host) func(Desired, error) ([]string, error) {
	return func(d Desired, err error) ([]string, error) {
		if err != nil {
			return nil, err
		}
		return d.Plan(ctx, h)
	}
}

// Apply makes the host match d: writes the files that differ, reloads
// systemd when a unit changed, restarts the services whose inputs changed
// (here or in changedBefore) and starts the ones not running. It returns
// what it changed.
func (d Desired) Apply(ctx context.Context, h *host.Host, changedBefore ...string) (Changes, error) {
	c, err := d.Diff(ctx, h, changedBefore...)
	if err != nil {
		return c, err
	}
	byPath := map[string]File{}
	for _, f := range d.allFiles() {
		byPath[f.Path] = f
	}
	// All of a phase's changed files together: a certificate never lands
	// without its key.
	var writes []host.Write
	for _, p := range c.Files {
		f := byPath[p]
		if f.Pending {
			return c, fmt.Errorf("%s: no content to write (a dry-run placeholder)", f.Path)
		}
		writes = append(writes, host.Write{Path: f.Path, Data: f.Data, Mode: f.Mode})
	}
	if err := h.PutAll(ctx, writes); err != nil {
		return c, err
	}
	starts := append(append([]string(nil), c.Restart...), c.Start...)
	if len(starts) > 0 {
		// Enabled without systemctl's implicit daemon-reload, which it
		// does on every enable (130 ms of a host's CPU each, measured on
		// the lab): the one reload below serves them all, and a unit
		// that did not change needs none to start.
		units := make([]string, len(starts))
		for i, s := range starts {
			units[i] = host.Quote(s + ".service")
		}
		if _, err := h.Run(ctx, "systemctl enable --no-reload "+strings.Join(units, " ")+" >/dev/null"); err != nil {
			return c, fmt.Errorf("enable %s: %w", strings.Join(starts, ", "), err)
		}
	}
	if c.Reloaded {
		if _, err := h.Run(ctx, "systemctl daemon-reload"); err != nil {
			return c, err
		}
	}
	for _, s := range starts {
		if _, err := h.Run(ctx, fmt.Sprintf("systemctl restart %s.service", host.Quote(s))); err != nil {
			return c, fmt.Errorf("start %s: %w (see journalctl -u %s)", s, err, s)
		}
	}
	for _, s := range c.Reload {
		if _, err := h.Run(ctx, fmt.Sprintf("systemctl reload %s.service", s)); err != nil {
			return c, fmt.Errorf("reload %s: %w (see journalctl -u %s)", s, err, s)
		}
	}
	return c, nil
}
