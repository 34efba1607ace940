package phases

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/vip"
)

// removeNodePhase takes a host out of the running cluster, from the
// admin machine through the other hosts (the host itself may be down): it
// refuses what would break the cluster, drains the node, gives the VIP
// away, removes its etcd member, and deletes the Node. env.Cluster is the
// cluster without the host: what stays.
type removeNodePhase struct {
	env    *Env
	target *config.Host
	force  bool
}

// NewRemoveNode removes target. force drains pods no controller manages,
// and lets a removal leave a single etcd member (never one that loses the
// quorum).
func NewRemoveNode(env *Env, target *config.Host, force bool) Phase {
	return &removeNodePhase{env: env, target: target, force: force}
}

func (p *removeNodePhase) Title() string {
	return "Take the node out: drain it, remove its etcd member, delete the Node"
}

// RefusalError is a change refused before anything changed: a removal for
// what it would leave of the cluster, a snapshot that is not whole.
type RefusalError struct{ Msg string }

func (e *RefusalError) Error() string { return e.Msg }

func (p *removeNodePhase) Prepare(ctx context.Context) error {
	c, t := p.env.Cluster, p.target
	if t.Has(config.RoleControlPlane) && len(c.HostsWith(config.RoleControlPlane)) == 0 {
		return &RefusalError{fmt.Sprintf("%s is the last control plane: removing it would leave no cluster ('kubeforge reset' takes the whole cluster down)", t.Name)}
	}
	var member *cluster.Member
	var via *host.Host
	var etcd cluster.Etcd
	if t.Has(config.RoleEtcd) {
		var err error
		if member, via, etcd, err = p.checkEtcd(ctx); err != nil {
			return err
		}
	}
	if p.env.DryRun {
		fmt.Fprintf(p.env.Out, "[remove-node] would drain %s, remove its etcd member and delete the Node\n", t.Name)
		return nil
	}
	if err := p.drain(ctx); err != nil {
		return err
	}
	if t.Has(config.RoleControlPlane) {
		p.giveVIPAway(ctx)
	}
	if member != nil {
		start := time.Now()
		if err := etcd.Remove(ctx, member.ID); err != nil {
			return fmt.Errorf("remove %s's etcd member: %w", t.Name, err)
		}
		if err := p.env.Client.WaitEtcdCluster(ctx, via, 2*time.Minute); err != nil {
			return err
		}
		fmt.Fprintf(p.env.Out, "[remove-node] etcd member %s removed in %s; the other members are healthy\n", t.Name, time.Since(start).Round(100*time.Millisecond))
	}
	if err := p.env.Client.DeleteNode(ctx, t.Name); err != nil {
		return err
	}
	fmt.Fprintf(p.env.Out, "[remove-node] Node %s deleted\n", t.Name)
	return nil
}

// drain cordons the node and evicts its pods (PodDisruptionBudgets hold
// the eviction up to the timeout). A node that is not Ready is not drained:
// its kubelet would never confirm the pods gone; deleting the Node lets
// their controllers replace them.
func (p *removeNodePhase) drain(ctx context.Context) error {
	t := p.target
	node, err := p.env.Client.Node(ctx, t.Name)
	switch {
	case cluster.IsNotFound(err):
		fmt.Fprintf(p.env.Out, "[remove-node] there is no Node %s: nothing to drain\n", t.Name)
		return nil
	case err != nil:
		return err
	case !cluster.NodeReady(node):
		fmt.Fprintf(p.env.Out, "[remove-node] Node %s is not Ready: not draining it; its pods are replaced once it is deleted\n", t.Name)
		return nil
	}
	start := time.Now()
	if err := p.env.Client.Drain(ctx, t.Name, cluster.DrainOptions{Timeout: 300 * time.Second, Force: p.force}); err != nil {
		return fmt.Errorf("%w (the node stays cordoned: 'kubectl uncordon %s' takes it back)", err, t.Name)
	}
	fmt.Fprintf(p.env.Out, "[remove-node] %s cordoned and drained in %s\n", t.Name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// giveVIPAway puts a reachable control plane in maintenance so the others
// take the VIP before its API server goes; an unreachable one holds
// nothing. It is best effort: its keepalived is reset with the host.
func (p *removeNodePhase) giveVIPAway(ctx context.Context) {
	addr := p.env.Cluster.Spec.ControlPlane.VIP
	if addr == "" {
		return
	}
	h, err := p.env.Connect(ctx, p.target)
	if err != nil {
		return
	}
	if held, err := vip.Holds(ctx, h, addr); err != nil || !held {
		return
	}
	probe, err := p.env.Client.ControlHost(ctx)
	if err != nil {
		return
	}
	start := time.Now()
	if err := vip.MoveOff(ctx, p.env.Client, p.env.Cluster, h, probe); err != nil {
		fmt.Fprintf(p.env.Out, "[remove-node] warning: %s still holds the VIP %s: %v\n", p.target.Name, addr, err)
		return
	}
	fmt.Fprintf(p.env.Out, "[remove-node] VIP %s moved off %s in %s\n", addr, p.target.Name, time.Since(start).Round(100*time.Millisecond))
}

// checkEtcd refuses a removal that would cost the etcd cluster its quorum,
// and, unless forced, one that leaves a single member. It returns the
// target's member (nil when it is no member) and a healthy member to
// remove it through.
func (p *removeNodePhase) checkEtcd(ctx context.Context) (*cluster.Member, *host.Host, cluster.Etcd, error) {
	via, err := p.env.Client.HealthyEtcdMember(ctx)
	if err != nil {
		return nil, nil, nil, &RefusalError{fmt.Sprintf("removing %s: no other etcd member is healthy, so its member cannot be removed safely (%v)", p.target.Name, err)}
	}
	etcd, err := p.env.Client.EtcdOn(ctx, via)
	if err != nil {
		return nil, nil, nil, err
	}
	members, err := etcd.Members(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var target *cluster.Member
	var voters, healthy []string
	for i, m := range members {
		if m.Name == p.target.Name || len(m.PeerURLs) > 0 && m.PeerURLs[0] == etcdPeerURL(p.target) {
			target = &members[i]
			continue
		}
		if m.Learner {
			continue
		}
		voters = append(voters, m.Name)
		urls := m.ClientURLs
		if spec := p.env.Cluster.Host(m.Name); spec != nil {
			urls = []string{etcdClientURL(spec)}
		}
		if len(urls) > 0 && etcd.Health(ctx, urls[0]) == nil {
			healthy = append(healthy, m.Name)
		}
	}
	if target == nil {
		return nil, via, etcd, nil // not a member (any more): nothing to remove
	}
	if target.Learner {
		return target, via, etcd, nil // a learner does not count for the quorum
	}
	warning, err := removalVerdict(p.target.Name, voters, healthy, p.force)
	if err != nil {
		return nil, nil, nil, err
	}
	if warning != "" {
		fmt.Fprintln(p.env.Out, "[remove-node] warning: "+warning)
	}
	return target, via, etcd, nil
}

func (*removeNodePhase) Run(context.Context, *host.Host) error { return nil }

// removalVerdict applies the quorum rules to removing a voting member,
// given the voting members that would remain and which of them are
// healthy: it refuses a removal that leaves fewer healthy members than a
// quorum of the rest (never forced), and, unless forced, one that leaves a
// single member; it warns about an even number.
func removalVerdict(target string, voters, healthy []string, force bool) (string, error) {
	quorum := len(voters)/2 + 1
	switch {
	case len(voters) == 0:
		return "", &RefusalError{fmt.Sprintf("%s is the only etcd member: removing it would leave no cluster ('kubeforge reset' takes the whole cluster down)", target)}
	case len(healthy) < quorum:
		return "", &RefusalError{fmt.Sprintf("removing %s would leave %d etcd voting members of which %d are healthy (%s), fewer than the %d a quorum of %d needs: "+
			"the cluster would stop. Bring the others back first ('kubeforge status' shows which)", target, len(voters), len(healthy), strings.Join(healthy, ", "), quorum, len(voters))}
	case len(voters) == 1 && !force:
		return "", &RefusalError{fmt.Sprintf("removing %s would leave a single etcd member (%s): the cluster's data would live on one host, and losing it loses the cluster. "+
			"Join another control plane first, or pass --force to remove it anyway (%s is healthy, so the cluster keeps serving)", target, voters[0], voters[0])}
	case len(voters)%2 == 0:
		return fmt.Sprintf("%d etcd members remain: an even number survives no more failures than one fewer (a quorum of %d needs %d); join a control plane to make it %d",
			len(voters), len(voters), quorum, len(voters)+1), nil
	}
	return "", nil
}
