// Package vip gives the control plane's virtual IP away and takes it back
// without a gap, for a control plane whose API server or etcd is about to
// restart (a renewal, a removal, an upgrade). keepalived's maintenance
// check fails while MaintenanceFlag exists, which lowers the host's VRRP
// priority below every peer's: a healthy peer takes the VIP and announces
// it before the host lets it go (make before break), and the other way
// round when the flag goes.
package vip

import (
	"context"
	"fmt"
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

// MoveOff puts h in maintenance and waits until it no longer holds the
// VIP and the API answers through the VIP, asked from probe. On failure
// the maintenance ends again.
func MoveOff(ctx context.Context, client *cluster.Client, c *config.Cluster, h, probe *host.Host) error {
	vip := c.Spec.ControlPlane.VIP
	if _, err := h.Run(ctx, "touch "+MaintenanceFlag); err != nil {
		return err
	}
	err := wait.For(ctx, 30*time.Second, func() (bool, error) {
		held, err := Holds(ctx, h, vip)
		if err != nil || held {
			return false, err
		}
		return client.EndpointReady(ctx, probe) == nil, nil
	})
	if err != nil {
		_, _ = h.Run(context.WithoutCancel(ctx), "rm -f "+MaintenanceFlag)
		return fmt.Errorf("no other control plane took the VIP %s: %w (see journalctl -u keepalived)", vip, err)
	}
	return nil
}

// Return ends h's maintenance: it may hold the VIP again (and, having the
// highest priority, takes it back, make before break). It waits until the
// API answers through the VIP from h.
func Return(ctx context.Context, client *cluster.Client, h *host.Host) error {
	if _, err := h.Run(ctx, "rm -f "+MaintenanceFlag); err != nil {
		return err
	}
	// Its checks pass twice a second apart before keepalived counts it.
	time.Sleep(3 * time.Second)
	return wait.For(ctx, time.Minute, func() (bool, error) { return client.EndpointReady(ctx, h) == nil, nil })
}
