// Package vip gives the control plane's virtual IP away, for a control
// plane whose API server or etcd is about to restart (a renewal, an
// upgrade), without failing a request through it. keepalived's
// maintenance check fails while MaintenanceFlag exists, which lowers the
// host's VRRP priority below every peer's, so it wins no election while it
// restarts. A holder hands the VIP over: new connections to the VIP on it
// wait (their SYN is dropped, and the client sends it again a second
// later), its API server shuts down gracefully (HTTP/2 GOAWAY: clients
// finish what is in flight and open a new connection), then keepalived
// stops there and the peer with the highest priority takes the VIP at
// once; the delayed SYNs reach that peer. keepalived never preempts
// (nopreempt), so the VIP does not come back, which would reset every
// connection open through it.
package vip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
)

// Files of keepalived's maintenance check.
const (
	// MaintenanceScript fails while MaintenanceFlag exists: the host's
	// VRRP priority then drops by MaintenanceWeight, below every other's.
	MaintenanceScript = "/etc/keepalived/kubeforge-maintenance.sh"
	MaintenanceFlag   = "/etc/keepalived/kubeforge-maintenance"
	MaintenanceWeight = 190
)

// Holds reports whether h has the VIP on an interface.
func Holds(ctx context.Context, h *host.Host, vip string) (bool, error) {
	out, err := h.Run(ctx, "ip -o addr show")
	return strings.Contains(out, " "+vip+"/"), err
}

// Movable reports whether the cluster has a VIP and another control plane
// to hold it.
func Movable(c *config.Cluster) bool {
	return c.Spec.ControlPlane.VIP != "" && len(c.HostsWith(config.RoleControlPlane)) >= 2
}

// handoffRule is the rule that holds new connections to the VIP back on
// its holder during a hand-over: the iptables program for the VIP's
// family, and the arguments after -C, -I or -D. The VIP and the port are
// validated values (an address, a number).
func handoffRule(c *config.Cluster) (program, rule string) {
	program, bits := "iptables", 32
	if a, err := netip.ParseAddr(c.Spec.ControlPlane.VIP); err == nil && a.Is6() {
		program, bits = "ip6tables", 128
	}
	return program, fmt.Sprintf("INPUT -d %s/%d -p tcp --dport %d --syn -m comment --comment kubeforge-vip-handoff -j DROP",
		c.Spec.ControlPlane.VIP, bits, c.Spec.ControlPlane.Port)
}

// handoffCommand is the rule's command with op (-C, -I, -D).
func handoffCommand(c *config.Cluster, op string) string {
	program, rule := handoffRule(c)
	return program + " -w " + op + " " + rule
}

// ClearHandoff removes the hand-over's rule, left behind by a run that
// was killed during one: on a host that holds the VIP later, it would
// hold every new connection back.
func ClearHandoff(ctx context.Context, h *host.Host, c *config.Cluster) error {
	_, err := h.Run(ctx, "while "+handoffCommand(c, "-D")+" 2>/dev/null; do :; done")
	return err
}

// MoveOff puts h in maintenance and, when it holds the VIP, hands it over;
// it waits until h no longer holds the VIP and the API answers through
// the VIP, asked from probe. Return undoes it. On failure the maintenance
// ends again.
func MoveOff(ctx context.Context, client *cluster.Client, c *config.Cluster, h, probe *host.Host) error {
	vip := c.Spec.ControlPlane.VIP
	held, err := Holds(ctx, h, vip)
	if err != nil {
		return err
	}
	if _, err := h.Run(ctx, "touch "+MaintenanceFlag); err != nil {
		return err
	}
	if held {
		// In-flight requests of the API server's clients finish in the
		// 300 ms before keepalived stops; a request that comes later goes
		// on a new connection, whose SYN waits for the new holder.
		script := fmt.Sprintf(`set -e
%s 2>/dev/null || %s
systemctl stop --no-block kube-apiserver
sleep 0.3
systemctl stop keepalived`, handoffCommand(c, "-C"), handoffCommand(c, "-I"))
		if _, err := h.Run(ctx, script); err != nil {
			undo(ctx, h, c)
			return fmt.Errorf("hand the VIP %s over: %w", vip, err)
		}
	}
	err = wait.For(ctx, 30*time.Second, func() (bool, error) {
		held, err := Holds(ctx, h, vip)
		if err != nil || held {
			return false, err
		}
		return client.EndpointReady(ctx, probe) == nil, nil
	})
	if err != nil {
		undo(ctx, h, c)
		return fmt.Errorf("no other control plane took the VIP %s: %w (see journalctl -u keepalived)", vip, err)
	}
	if held {
		// The VIP's traffic reaches the new holder: nothing more to hold
		// back here. The API server's shutdown ends before the restart.
		if _, err := h.Run(ctx, handoffCommand(c, "-D")+"; systemctl stop kube-apiserver"); err != nil {
			return err
		}
	}
	return nil
}

// undo ends a maintenance that failed: the rule, the flag, the services.
func undo(ctx context.Context, h *host.Host, c *config.Cluster) {
	ctx = context.WithoutCancel(ctx)
	_, _ = h.Run(ctx, fmt.Sprintf("%s 2>/dev/null; rm -f %s; systemctl start kube-apiserver keepalived", handoffCommand(c, "-D"), MaintenanceFlag))
}

// Return ends h's maintenance: its API server runs (a hand-over stopped
// it, and a restart with nothing new does not start it) and is ready, and
// keepalived runs again. The VIP stays where it went (nopreempt). It waits
// until the API answers through the VIP from h.
func Return(ctx context.Context, client *cluster.Client, c *config.Cluster, h *host.Host) error {
	if err := ClearHandoff(ctx, h, c); err != nil {
		return err
	}
	if _, err := h.Run(ctx, "systemctl start kube-apiserver"); err != nil {
		return err
	}
	if err := client.WaitAPIServer(ctx, h, 3*time.Minute); err != nil {
		return err
	}
	if _, err := h.Run(ctx, "rm -f "+MaintenanceFlag+" && systemctl start keepalived"); err != nil {
		return err
	}
	// Its checks pass twice a second apart before keepalived counts it.
	time.Sleep(3 * time.Second)
	return wait.For(ctx, time.Minute, func() (bool, error) { return client.EndpointReady(ctx, h) == nil, nil })
}
