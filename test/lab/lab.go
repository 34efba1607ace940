// Package lab gives end-to-end tests the lab that `make lab-up` starts: real
// hosts on this machine, each a privileged Docker container with systemd as
// PID 1, sshd and its own address (see README.md in this directory).
//
// Load reads .lab/hosts.json, which lab-up writes; it needs no Docker. The
// methods that act on a host (Stop, Start, Recreate, Exec) run the docker CLI
// and test/lab/lab.sh, so hosts are made exactly the way lab-up makes them.
// Only the standard library is used.
package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// StateDir is where lab-up writes its files, relative to the repository root.
const StateDir = ".lab"

// Host is one lab host.
type Host struct {
	Name      string   `json:"name"`      // lab1: the hostname, and the name in the cluster file
	Container string   `json:"container"` // kubeforge-lab1: the Docker container
	IP        string   `json:"ip"`        // 172.30.0.11
	Roles     []string `json:"roles"`     // as in the cluster file
}

// Lab is a running lab, as .lab/hosts.json describes it.
type Lab struct {
	Network       string `json:"network"`       // the Docker network
	Bridge        string `json:"bridge"`        // its Linux bridge
	Subnet        string `json:"subnet"`        // 172.30.0.0/24
	Gateway       string `json:"gateway"`       // 172.30.0.1: this machine, seen from the hosts
	Image         string `json:"image"`         // the hosts' image, kubeforge-lab:<hash>
	ControlPlanes int    `json:"controlPlanes"` // the first ControlPlanes hosts are control planes
	VIP           string `json:"vip"`           // the control plane VIP, "" with one control plane
	Airgap        bool   `json:"airgap"`        // the hosts reach nothing outside the lab (AIRGAP=1)
	SSHUser       string `json:"sshUser"`       // root
	Key           string `json:"keyFile"`       // the lab's private key, absolute
	Cluster       string `json:"clusterFile"`   // the cluster file, absolute
	HostList      []Host `json:"hosts"`

	root string // the repository root
}

// Load reads repoRoot/.lab/hosts.json and checks it.
func Load(repoRoot string) (*Lab, error) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, StateDir, "hosts.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the lab is not up (no %s): run make lab-up", path)
	}
	if err != nil {
		return nil, err
	}
	l, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l.root = root
	return l, nil
}

// parse decodes and validates hosts.json.
func parse(data []byte) (*Lab, error) {
	var l Lab
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, err
	}
	var errs []error
	subnet, err := netip.ParsePrefix(l.Subnet)
	if err != nil {
		errs = append(errs, fmt.Errorf("subnet: %w", err))
	}
	if l.Network == "" {
		errs = append(errs, errors.New("network is empty"))
	}
	if l.Image == "" {
		errs = append(errs, errors.New("image is empty"))
	}
	if !filepath.IsAbs(l.Key) || !filepath.IsAbs(l.Cluster) {
		errs = append(errs, fmt.Errorf("keyFile %q and clusterFile %q must be absolute", l.Key, l.Cluster))
	}
	if len(l.HostList) == 0 {
		errs = append(errs, errors.New("no hosts"))
	}
	seen := map[string]bool{}
	for i, h := range l.HostList {
		switch {
		case h.Name == "" || h.Container == "":
			errs = append(errs, fmt.Errorf("hosts[%d]: name and container are required", i))
		case seen[h.Name]:
			errs = append(errs, fmt.Errorf("hosts[%d]: %s is listed twice", i, h.Name))
		}
		seen[h.Name] = true
		ip, err := netip.ParseAddr(h.IP)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): %w", i, h.Name, err))
		case subnet.IsValid() && !subnet.Contains(ip):
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): %s is outside %s", i, h.Name, ip, subnet))
		}
		if len(h.Roles) == 0 {
			errs = append(errs, fmt.Errorf("hosts[%d] (%s): no roles", i, h.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &l, nil
}

// Hosts returns the lab's hosts, in order (lab1, lab2, ...).
func (l *Lab) Hosts() []Host {
	out := make([]Host, len(l.HostList))
	for i, h := range l.HostList {
		h.Roles = append([]string(nil), h.Roles...)
		out[i] = h
	}
	return out
}

// Host returns the host with that name.
func (l *Lab) Host(name string) (Host, error) {
	for _, h := range l.HostList {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("lab: no host %q (the lab has %s)", name, strings.Join(l.names(), ", "))
}

func (l *Lab) names() []string {
	var n []string
	for _, h := range l.HostList {
		n = append(n, h.Name)
	}
	return n
}

// ClusterFile is the absolute path of the lab's cluster file.
func (l *Lab) ClusterFile() string { return l.Cluster }

// KeyFile is the absolute path of the private key root and kf log in with.
func (l *Lab) KeyFile() string { return l.Key }

// Root is the repository root the lab was loaded from.
func (l *Lab) Root() string { return l.root }

// Stop stops a host's container (systemd shuts down); its disk stays.
func (l *Lab) Stop(ctx context.Context, name string) error {
	return l.script(ctx, "stop", name)
}

// Start starts a stopped host and waits until systemd has booted and root can
// log in over SSH. The host keeps its SSH host keys.
func (l *Lab) Start(ctx context.Context, name string) error {
	return l.script(ctx, "start", name)
}

// Recreate removes a host's container and its disk, and makes a new one with
// the same name and address, the way lab-up does: a fresh machine with a new
// SSH host key. It returns when the host has booted and SSH answers.
func (l *Lab) Recreate(ctx context.Context, name string) error {
	return l.script(ctx, "recreate", name)
}

// Exec runs a command in a host with docker exec, as root, and returns its
// standard output. The error carries the standard error.
func (l *Lab) Exec(ctx context.Context, name string, args ...string) (string, error) {
	h, err := l.Host(name)
	if err != nil {
		return "", err
	}
	if len(args) == 0 {
		return "", errors.New("lab: Exec needs a command")
	}
	cmd := exec.CommandContext(ctx, "docker", append([]string{"exec", h.Container}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("lab: %s: %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// script runs test/lab/lab.sh with a subcommand for one host.
func (l *Lab) script(ctx context.Context, what, name string) error {
	if _, err := l.Host(name); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(l.root, "test", "lab", "lab.sh"), what, name)
	cmd.Dir = l.root
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: %s %s: %w\n%s", what, name, err, bytes.TrimSpace(out))
	}
	return nil
}
