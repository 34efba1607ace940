package phases

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
	"github.com/kubeforge/kubeforge/templates"
)

// etcdPhase runs an etcd member on each etcd host, with TLS between
// clients and peers, as its own system user etcd (CIS 1.1.12) with a
// 0700 data directory it owns (1.1.11).
//
// The first member of a new cluster starts it alone. Every other member
// joins through the running cluster as a learner (a non-voting member,
// so quorum does not change while it copies the data) and is promoted to
// a voter once it has caught up. The step is serial: members join one at
// a time. Membership is not in the unit file but in an environment file
// etcd reads only at a member's first start, so adding a member changes
// no other member's unit and restarts nothing.
type etcdPhase struct{ env *Env }

func (*etcdPhase) Title() string { return "etcd" }

// EtcdInitialClusterFile holds ETCD_INITIAL_CLUSTER and _STATE for a
// member's first start; once the member has data etcd ignores them.
const EtcdInitialClusterFile = "/var/lib/kubeforge/etcd-initial-cluster.env"

// etcd's own user. The user and its group are declared for
// systemd-sysusers (part of systemd since 215, Debian's included) in
// EtcdSysusersFile, and made from it before the unit starts: systemd
// starts no service whose User= does not exist. No shell field: before
// systemd 246 sysusers read five fields, and every version gives a
// system user nologin.
const (
	EtcdUser         = "etcd"
	EtcdSysusersFile = "/etc/sysusers.d/kubeforge-etcd.conf"
)

// EtcdTLSDir holds etcd's copies of its CA, certificates and keys, made
// by its unit at each start (a RuntimeDirectory, gone when etcd stops).
// The files in /etc/kubernetes/pki/etcd stay root's: the CIS benchmark
// wants everything under /etc/kubernetes/pki owned by root:root (1.1.19),
// so etcd cannot own them there. systemd's LoadCredential= does the same
// copy, but only from systemd 247 (%d from 248); this works from 231.
const EtcdTLSDir = "/run/etcd"

// etcdTLSFiles are the files under /etc/kubernetes/pki/etcd that etcd
// reads, copied into EtcdTLSDir.
var etcdTLSFiles = []string{"ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"}

func etcdTLS(name string) string { return path.Join(EtcdTLSDir, name) }

// etcdSysusers is the sysusers.d line of the etcd user: a system user,
// its own group of the same name, home the data directory (not made by
// sysusers).
func etcdSysusers() File {
	data := fmt.Sprintf("# %s\n# The user etcd runs as (etcd.service).\nu %s - \"etcd (kubeforge)\" %s\n", templates.Header, EtcdUser, EtcdDataDir)
	return File{Path: EtcdSysusersFile, Data: []byte(data), Mode: host.FileMode{Perm: 0o644}}
}

// createEtcdUser makes the etcd user and group from EtcdSysusersFile,
// which must be on the host: nothing when they exist.
func createEtcdUser(ctx context.Context, h *host.Host) error {
	if _, err := h.Run(ctx, "systemd-sysusers "+EtcdSysusersFile); err != nil {
		return fmt.Errorf("create the %s user (systemd-sysusers %s): %w", EtcdUser, EtcdSysusersFile, err)
	}
	return nil
}

// etcdStartPre are the unit's commands before etcd starts, as root ("+"):
// the data directory made, 0700, and etcd's with all it holds (a member
// that ran as root before, a snapshot restored as root); the TLS files
// copied for the etcd user, who cannot read the keys in place. systemd
// makes the RuntimeDirectory (etcd's, 0700) before these run; -D makes it
// anyway should one not, and the copies are etcd's and 0400 either way.
// etcdReload refreshes a running etcd's copies, each renamed into place
// whole: etcd reads its certificate files again at each TLS handshake, so
// a renewal restarts nothing (as when it read them in place).
func etcdReload() string {
	var steps []string
	for _, f := range etcdTLSFiles {
		tmp := etcdTLS("." + f + ".new")
		steps = append(steps, fmt.Sprintf("/usr/bin/install -m 0400 -o %s -g %s %s %s && /bin/mv -f %s %s",
			EtcdUser, EtcdUser, pki("etcd/"+f), tmp, tmp, etcdTLS(f)))
	}
	return "+/bin/sh -c '" + strings.Join(steps, " && ") + "'"
}

func etcdStartPre() []string {
	owner := EtcdUser + ":" + EtcdUser
	src := make([]string, len(etcdTLSFiles))
	for i, f := range etcdTLSFiles {
		src[i] = pki("etcd/" + f)
	}
	return []string{
		"+/bin/mkdir -p -m 0700 " + EtcdDataDir,
		"+/bin/chmod 0700 " + EtcdDataDir,
		"+/bin/chown -R " + owner + " " + EtcdDataDir,
		fmt.Sprintf("+/usr/bin/install -D -m 0400 -o %s -g %s -t %s %s", EtcdUser, EtcdUser, EtcdTLSDir, strings.Join(src, " ")),
	}
}

func etcdURL(addr netip.Addr, port int) string { return cluster.EtcdURL(addr, port) }
func etcdPeerURL(h *config.Host) string        { return cluster.PeerURL(h) }
func etcdClientURL(h *config.Host) string      { return cluster.ClientURL(h) }

// etcdServers are the members an API server on h talks to: its own when
// h runs one (stacked etcd, as kubeadm does, so membership changes never
// touch the API server's flags), else every member.
func etcdServers(c *config.Cluster, h *config.Host) string {
	if h.Has(config.RoleEtcd) {
		return etcdURL(netip.MustParseAddr("127.0.0.1"), EtcdClientPort)
	}
	var eps []string
	for _, m := range c.HostsWith(config.RoleEtcd) {
		eps = append(eps, etcdClientURL(m))
	}
	return strings.Join(eps, ",")
}

func (p *etcdPhase) desired(h *host.Host) (Desired, error) {
	node := path.Join(certs.NodesDir, h.Name(), certs.PKIDir, "etcd")
	etcdDir := pki("etcd")
	files, err := p.env.pkiFiles(append(append(append(
		[]string{"pki/etcd/ca.crt", pki("etcd/ca.crt")},
		pair(node, etcdDir, "server")...),
		pair(node, etcdDir, "peer")...),
		pair("pki/etcd", etcdDir, "healthcheck-client")...)...)
	if err != nil {
		return Desired{}, err
	}
	inputs := paths(files)
	files = append(files, etcdSysusers()) // read once, not by etcd: no restart
	ip := h.Spec.ClusterAddress()
	args := flags(map[string]string{
		"name":                           h.Name(),
		"data-dir":                       EtcdDataDir,
		"listen-client-urls":             etcdURL(netip.MustParseAddr("127.0.0.1"), EtcdClientPort) + "," + etcdURL(ip, EtcdClientPort),
		"advertise-client-urls":          etcdURL(ip, EtcdClientPort),
		"listen-peer-urls":               etcdURL(ip, EtcdPeerPort),
		"initial-advertise-peer-urls":    etcdURL(ip, EtcdPeerPort),
		"initial-cluster-token":          "kubeforge-" + p.env.Cluster.Metadata.Name,
		"listen-metrics-urls":            fmt.Sprintf("http://127.0.0.1:%d", EtcdMetricsPort),
		"client-cert-auth":               "true",
		"trusted-ca-file":                etcdTLS("ca.crt"),
		"cert-file":                      etcdTLS("server.crt"),
		"key-file":                       etcdTLS("server.key"),
		"peer-client-cert-auth":          "true",
		"peer-trusted-ca-file":           etcdTLS("ca.crt"),
		"peer-cert-file":                 etcdTLS("peer.crt"),
		"peer-key-file":                  etcdTLS("peer.key"),
		"snapshot-count":                 "10000",
		"watch-progress-notify-interval": "5s",
		// The API servers' TLS floor and strong suites, for clients and
		// peers alike (TLS1.2 is etcd 3.6's default floor, said out loud).
		"tls-min-version": "TLS1.2",
		"cipher-suites":   strings.Join(tlsCipherSuites(), ","),
	})
	u, err := unit{
		Description:      "etcd: the Kubernetes cluster's key-value store",
		Documentation:    "https://etcd.io/docs/v3.6/",
		After:            []string{"network-online.target"},
		Wants:            []string{"network-online.target"},
		Type:             "notify",
		User:             EtcdUser,
		Group:            EtcdUser,
		RuntimeDirectory: path.Base(EtcdTLSDir),
		Environment:      []string{"KUBEFORGE_BINARY=" + binaryID(p.env, "etcd")},
		EnvironmentFile:  EtcdInitialClusterFile,
		ExecStartPre:     etcdStartPre(),
		ExecReload:       etcdReload(),
		Exec:             bin("etcd"),
		Args:             args,
		LimitNOFILE:      65536,
	}.render()
	if err != nil {
		return Desired{}, err
	}
	return Desired{Files: files, Services: []Service{{Name: "etcd", Unit: u, Inputs: inputs, Reload: true}}}, nil
}

// membership is what the etcd phase learns before it starts a member.
type membership struct {
	hasData bool // the host holds a member's data already
	// peers are the other members' client URLs that accept connections.
	peers []string
	// members is the cluster's member list, when a peer answered.
	members []cluster.Member
	// self is this host's entry in members, if any.
	self *cluster.Member
}

// others are the client URLs of the cluster's other etcd hosts.
func (p *etcdPhase) others(h *host.Host) []string {
	var out []string
	for _, m := range p.env.Cluster.HostsWith(config.RoleEtcd) {
		if m.Name != h.Name() {
			out = append(out, etcdClientURL(m))
		}
	}
	return out
}

// isFirst: the first etcd host in the cluster file starts a new cluster
// when no other member answers.
func (p *etcdPhase) isFirst(h *host.Host) bool {
	all := p.env.Cluster.HostsWith(config.RoleEtcd)
	return len(all) > 0 && all[0].Name == h.Name()
}

// peers reaches the running members from h (the joining host: its own
// network path to them, as the member will use).
func (p *etcdPhase) peers(ctx context.Context, h *host.Host, m membership) (cluster.Etcd, error) {
	return p.env.Client.EtcdVia(ctx, h, m.peers...)
}

func (p *etcdPhase) inspect(ctx context.Context, h *host.Host) (membership, error) {
	var m membership
	// One round trip: whether this host holds a member's data, and which
	// peers listen at all (a TCP connect bounded to a second, so a new
	// cluster's first member does not wait on a client's timeouts for
	// members that do not exist yet). key=value lines, read by key.
	var probe strings.Builder
	fmt.Fprintf(&probe, "[ -d %s/member/wal ] && echo data=1\n", EtcdDataDir)
	for _, u := range p.others(h) {
		ap := netip.MustParseAddrPort(strings.TrimPrefix(u, "https://"))
		fmt.Fprintf(&probe, "timeout 1 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null && echo listening=%s\n", ap.Addr(), ap.Port(), u)
	}
	probe.WriteString("true\n")
	out, err := h.Run(ctx, probe.String())
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(out, "\n") {
		switch key, v, _ := strings.Cut(line, "="); key {
		case "data":
			m.hasData = true
		case "listening":
			m.peers = append(m.peers, v)
		}
	}
	if len(m.peers) == 0 {
		return m, nil
	}
	e, err := p.peers(ctx, h, m)
	if err == nil {
		m.members, err = e.Members(ctx)
	}
	if err != nil {
		if m.hasData {
			// A member already; its peers may not answer TLS (certificates
			// that expired, all of them about to restart): start it as is.
			return m, nil
		}
		return m, fmt.Errorf("list the etcd members through %s: %w", strings.Join(m.peers, ","), err)
	}
	m.self = findMember(m.members, etcdPeerURL(h.Spec))
	return m, nil
}

// findMember is the member with the peer URL, if any.
func findMember(members []cluster.Member, peerURL string) *cluster.Member {
	for i := range members {
		if slices.Contains(members[i].PeerURLs, peerURL) {
			return &members[i]
		}
	}
	return nil
}

func (p *etcdPhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	lines, err := planOf(ctx, h)(p.desired(h))
	if err != nil {
		return nil, err
	}
	m, err := p.inspect(ctx, h)
	if err != nil {
		return append(lines, "etcd membership: "+shortErr(err)), nil
	}
	switch {
	case m.hasData: // a member: nothing to change in the membership
	case len(m.members) > 0:
		lines = append(lines, fmt.Sprintf("join the etcd cluster (%d members) as a learner, then promote it", len(m.members)))
	case p.isFirst(h):
		lines = append(lines, "start a new etcd cluster with this member")
	default:
		lines = append(lines, "join the etcd cluster once its first member runs")
	}
	return lines, nil
}

func (p *etcdPhase) Run(ctx context.Context, h *host.Host) error {
	d, err := p.desired(h)
	if err != nil {
		return err
	}
	// The certificates first: the member starts with them, and the
	// cluster is reached through this host before it starts. The user
	// too, which the unit names.
	written, err := (Desired{Files: d.Files}).Apply(ctx, h)
	if err != nil {
		return err
	}
	if err := createEtcdUser(ctx, h); err != nil {
		return err
	}
	m, err := p.inspect(ctx, h)
	if err != nil {
		return err
	}
	learner := false
	switch {
	case m.hasData && m.members != nil && m.self == nil:
		return fmt.Errorf("%s holds etcd data, but the cluster has no member at %s (it was removed): move %s away to join it again",
			h.Name(), etcdPeerURL(h.Spec), EtcdDataDir)
	case m.hasData:
		// A member already: start it as it is (it may be what brings
		// quorum back); a learner left by an interrupted join is promoted.
		learner = m.self != nil && m.self.Learner
	case len(m.peers) == 0:
		if !p.isFirst(h) {
			first := p.env.Cluster.HostsWith(config.RoleEtcd)[0]
			return fmt.Errorf("no etcd member answers (tried %s): %s, the first member, must run before %s can join",
				strings.Join(p.others(h), ", "), first.Label(), h.Name())
		}
		if err := p.writeInitialCluster(ctx, h, "new", h.Name()+"="+etcdPeerURL(h.Spec)); err != nil {
			return err
		}
	default: // no data here: join through the running members
		if learner, err = p.join(ctx, h, &m); err != nil {
			return err
		}
	}
	// The certificates written above count as changed: a running etcd
	// takes them with a reload (its copies refreshed), not a restart.
	if _, err := d.Apply(ctx, h, written.Files...); err != nil {
		return err
	}
	if learner {
		if err := p.promote(ctx, h, m); err != nil {
			return err
		}
	}
	local, err := p.env.Client.EtcdOn(ctx, h)
	if err != nil {
		return err
	}
	var last error
	if err := wait.For(ctx, 2*time.Minute, func() (bool, error) {
		last = local.Health(ctx, cluster.LocalEtcd)
		return last == nil, nil
	}); err != nil {
		return fmt.Errorf("etcd is not healthy: %w: %v (see journalctl -u etcd)", err, last)
	}
	return nil
}

// join makes this host a member (a learner) through the running ones and
// writes what its first start needs; learner says it is one.
func (p *etcdPhase) join(ctx context.Context, h *host.Host, m *membership) (learner bool, err error) {
	e, err := p.peers(ctx, h, *m)
	if err != nil {
		return false, err
	}
	if m.self != nil && m.self.Name != "" {
		// It ran before and lost its data (a re-installed host): its
		// old identity cannot come back; remove it, then join anew.
		if err := e.Remove(ctx, m.self.ID); err != nil {
			return false, fmt.Errorf("remove the stale etcd member %s: %w", h.Name(), err)
		}
		p.env.Log.Info("removed a stale etcd member", "host", h.Name(), "id", m.self.HexID())
		m.members = slices.DeleteFunc(m.members, func(x cluster.Member) bool { return x.ID == m.self.ID })
		m.self = nil
	}
	if m.self == nil {
		added, err := p.addLearner(ctx, h, e)
		if err != nil {
			return false, err
		}
		m.members = append(m.members, added)
		m.self = &m.members[len(m.members)-1]
	}
	var initial []string
	for _, mem := range m.members {
		name := mem.Name
		if mem.ID == m.self.ID {
			name = h.Name()
		}
		if name == "" || len(mem.PeerURLs) == 0 {
			continue // another member added but never started: not ours to name
		}
		initial = append(initial, name+"="+mem.PeerURLs[0])
	}
	return m.self.Learner, p.writeInitialCluster(ctx, h, "existing", strings.Join(initial, ","))
}

// addLearner adds this host to the cluster as a non-voting member. etcd
// refuses while the leader has not been in touch with every voting member
// for a few seconds (right after the previous member's promotion): wait.
// A member with this peer URL already there is an earlier try that went
// through.
func (p *etcdPhase) addLearner(ctx context.Context, h *host.Host, e cluster.Etcd) (cluster.Member, error) {
	var added cluster.Member
	var last error
	err := wait.For(ctx, 2*time.Minute, func() (bool, error) {
		added, last = e.AddLearner(ctx, h.Name(), etcdPeerURL(h.Spec))
		switch {
		case last == nil:
			return true, nil
		case errors.Is(last, cluster.ErrUnavailable):
			return false, nil // the cluster settles after a membership change
		case errors.Is(last, cluster.ErrRefused):
			members, err := e.Members(ctx)
			if err != nil {
				return false, err
			}
			if self := findMember(members, etcdPeerURL(h.Spec)); self != nil {
				added, last = *self, nil
				return true, nil
			}
		}
		return false, wait.Permanent(last)
	})
	if err != nil {
		if last != nil && !errors.Is(err, last) {
			err = fmt.Errorf("%w: %v", err, last)
		}
		return cluster.Member{}, fmt.Errorf("add %s to the etcd cluster: %w", h.Name(), err)
	}
	p.env.Log.Info("added an etcd learner", "host", h.Name(), "id", added.HexID())
	return added, nil
}

// promote makes the learner a voting member once the leader finds it
// caught up (etcd refuses until then).
func (p *etcdPhase) promote(ctx context.Context, h *host.Host, m membership) error {
	e, err := p.peers(ctx, h, m)
	if err != nil {
		return err
	}
	var last error
	err = wait.For(ctx, 3*time.Minute, func() (bool, error) {
		last = e.Promote(ctx, m.self.ID)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("promote the etcd learner %s: %w: %v (see journalctl -u etcd)", h.Name(), err, last)
	}
	return nil
}

// writeInitialCluster writes what etcd needs for a member's first start.
func (p *etcdPhase) writeInitialCluster(ctx context.Context, h *host.Host, state, members string) error {
	data := fmt.Sprintf("# %s\n# etcd reads this only at the member's first start (an empty data directory).\nETCD_INITIAL_CLUSTER=%s\nETCD_INITIAL_CLUSTER_STATE=%s\n",
		templates.Header, members, state)
	return h.Put(ctx, EtcdInitialClusterFile, []byte(data), host.FileMode{Perm: 0o644})
}

// etcdctlSnapshot is the bundled etcdctl against the local member, with
// the healthcheck client certificate and the time a snapshot of a large
// database takes: the scheduled snapshots' script runs it on the member.
func etcdctlSnapshot(args string) string {
	return fmt.Sprintf("%s --endpoints=%s --cacert=%s --cert=%s --key=%s --dial-timeout=3s --command-timeout=%s %s",
		bin("etcdctl"), cluster.LocalEtcd, pki("etcd/ca.crt"), pki("etcd/healthcheck-client.crt"), pki("etcd/healthcheck-client.key"), 15*time.Minute, args)
}
