// Command flanneld is kubeforge's flannel daemon: flannel's own library
// packages (the Kubernetes subnet manager, the vxlan and host-gw backends and
// the iptables traffic manager) wired by a small main of ours.
//
// Upstream's main links every backend, and two of them cannot be built here
// (the tencentvpc SDK is not served by the module proxy; the udp backend
// needs cgo). A cluster set up by kubeforge only ever uses vxlan or host-gw
// over IPv4 with the Kubernetes subnet manager, so that is what this binary
// does. Flag names and files (net-conf.json, subnet.env, node annotations)
// are upstream's, so the flannel CNI plugin and tooling work unchanged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/hostgw" // registers "host-gw"
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"  // registers "vxlan"
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	"github.com/flannel-io/flannel/pkg/version"
	"k8s.io/klog/v2"
)

type options struct {
	kubeSubnetMgr             bool
	kubeAPIURL                string
	kubeconfig                string
	annotationPrefix          string
	netConfPath               string
	setNodeNetworkUnavailable bool
	ifaces                    stringList
	publicIP                  string
	subnetFile                string
	ipMasq                    bool
	ipMasqRandomFullyDisable  bool
	iptablesResync            int
	iptablesForwardRules      bool
	healthzIP                 string
	healthzPort               int
	version                   bool
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("flanneld", flag.ContinueOnError)
	fs.BoolVar(&o.kubeSubnetMgr, "kube-subnet-mgr", true, "use the Kubernetes API for subnet assignment (the only mode of this build)")
	fs.StringVar(&o.kubeAPIURL, "kube-api-url", "", "Kubernetes API server URL, overrides the kubeconfig's")
	fs.StringVar(&o.kubeconfig, "kubeconfig-file", "", "kubeconfig to reach the API server")
	fs.StringVar(&o.annotationPrefix, "kube-annotation-prefix", "flannel.alpha.coreos.com", "node annotation prefix")
	fs.StringVar(&o.netConfPath, "net-config-path", "/etc/kube-flannel/net-conf.json", "network configuration (Network, Backend)")
	fs.BoolVar(&o.setNodeNetworkUnavailable, "set-node-network-unavailable", true, "clear the node's NetworkUnavailable condition once ready")
	fs.Var(&o.ifaces, "iface", "interface (name or IP) for traffic between hosts; repeat to try several in order")
	fs.StringVar(&o.publicIP, "public-ip", "", "IP other nodes reach this one at")
	fs.StringVar(&o.subnetFile, "subnet-file", "/run/flannel/subnet.env", "where to write the node's subnet, MTU and masquerade setting")
	fs.BoolVar(&o.ipMasq, "ip-masq", false, "masquerade traffic leaving the pod network")
	fs.BoolVar(&o.ipMasqRandomFullyDisable, "ip-masq-fully-random-disable", false, "do not use --random-fully for MASQUERADE")
	fs.IntVar(&o.iptablesResync, "iptables-resync", 5, "iptables resync period, seconds")
	fs.BoolVar(&o.iptablesForwardRules, "iptables-forward-rules", true, "accept forwarded pod network traffic in the FORWARD chain")
	fs.StringVar(&o.healthzIP, "healthz-ip", "0.0.0.0", "healthz server address")
	fs.IntVar(&o.healthzPort, "healthz-port", 0, "healthz server port (0 disables it)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

func main() {
	var o options
	fs := newFlagSet(&o)
	klog.InitFlags(nil)
	for _, name := range []string{"v", "vmodule"} {
		f := flag.CommandLine.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if o.version {
		fmt.Println(version.Version)
		return
	}
	if !o.kubeSubnetMgr {
		klog.Error("this flanneld supports only --kube-subnet-mgr (no etcd subnet manager)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		klog.Error(err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Info("Exiting cleanly")
	klog.Flush()
}

func run(ctx context.Context, o *options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait() // backends and lease handling stop on cancel
	defer cancel()

	var ready atomic.Bool
	if o.healthzPort > 0 {
		serveHealthz(ctx, &wg, net.JoinHostPort(o.healthzIP, fmt.Sprint(o.healthzPort)), &ready)
	}

	sm, err := kube.NewSubnetManager(ctx, o.kubeAPIURL, o.kubeconfig, o.annotationPrefix, o.netConfPath, o.setNodeNetworkUnavailable)
	if err != nil {
		return fmt.Errorf("subnet manager: %w", err)
	}
	config, err := networkConfig(ctx, sm)
	if err != nil {
		return err
	}
	if !config.EnableIPv4 || config.EnableIPv6 || config.EnableNFTables {
		return errors.New(o.netConfPath + ": this flanneld supports IPv4 networks with iptables only (EnableIPv6 and EnableNFTables must be false)")
	}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		return fmt.Errorf("br_netfilter is not available: %w", err)
	}

	extIface, err := externalInterface(ctx, o, sm)
	if err != nil {
		return err
	}
	be, err := backend.NewManager(ctx, sm, extIface).GetBackend(config.BackendType)
	if err != nil {
		return fmt.Errorf("backend %q (this build has vxlan and host-gw): %w", config.BackendType, err)
	}
	network, err := registerNetwork(ctx, &wg, be, config)
	if err != nil {
		return fmt.Errorf("register network: %w", err)
	}

	tm := &iptables.IPTablesManager{}
	if err := tm.Init(ctx); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	if o.ipMasq {
		prev := readSubnetFile(o.subnetFile)
		err := tm.SetupAndEnsureMasqRules(ctx,
			config.Network, prev.subnet, prev.network,
			ip.IP6Net{}, ip.IP6Net{}, ip.IP6Net{},
			network.Lease(), o.iptablesResync, o.ipMasqRandomFullyDisable)
		if err != nil {
			return fmt.Errorf("masquerade rules: %w", err)
		}
	}
	if o.iptablesForwardRules {
		tm.SetupAndEnsureForwardRules(ctx, config.Network, ip.IP6Net{}, o.iptablesResync)
	}

	lease := network.Lease()
	if err := sm.HandleSubnetFile(o.subnetFile, config, o.ipMasq, lease.Subnet, lease.IPv6Subnet, network.MTU()); err != nil {
		return fmt.Errorf("write %s: %w", o.subnetFile, err)
	}
	ready.Store(true)
	klog.Infof("Wrote %s; running the %s backend", o.subnetFile, config.BackendType)

	wg.Add(1)
	go func() {
		defer wg.Done()
		network.Run(ctx)
	}()
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		klog.Warningf("notify systemd: %v", err)
	}
	// CompleteLease starts what keeps the node's lease (the Kubernetes
	// subnet manager returns at once); then run until told to stop.
	if err := sm.CompleteLease(ctx, lease, &wg); err != nil && ctx.Err() == nil {
		return fmt.Errorf("lease: %w", err)
	}
	<-ctx.Done()
	return nil
}

// podCIDRWait bounds the wait for the controller-manager to give the
// node its pod subnet.
const podCIDRWait = 2 * time.Minute

// registerNetwork gets the node's lease. A node that just registered may
// not have its spec.podCIDR yet (the controller-manager assigns it a
// moment later): that is waited for, polling, instead of failing and
// waiting out systemd's restart delay.
func registerNetwork(ctx context.Context, wg *sync.WaitGroup, be backend.Backend, config *subnet.Config) (backend.Network, error) {
	deadline := time.Now().Add(podCIDRWait)
	for {
		network, err := be.RegisterNetwork(ctx, wg, config)
		if err == nil || !strings.Contains(err.Error(), "pod cidr not assigned") || time.Now().After(deadline) {
			return network, err
		}
		klog.Infof("waiting for the node's pod subnet: %v", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// networkConfig waits for the network configuration, retrying every second.
func networkConfig(ctx context.Context, sm subnet.Manager) (*subnet.Config, error) {
	for {
		config, err := sm.GetNetworkConfig(ctx)
		if err == nil && config != nil {
			return config, nil
		}
		klog.Warningf("network configuration not available yet: %v", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// externalInterface picks the interface for traffic between hosts: the
// first --iface that exists, else the one holding the public IP, else the
// default route's.
func externalInterface(ctx context.Context, o *options, sm subnet.Manager) (*backend.ExternalInterface, error) {
	publicIP := o.publicIP
	if annotated, _ := sm.GetStoredPublicIP(ctx); annotated != "" {
		publicIP = annotated
	}
	stack, err := ipmatch.GetIPFamily(true, false)
	if err != nil {
		return nil, err
	}
	opts := ipmatch.PublicIPOpts{PublicIP: publicIP}
	if len(o.ifaces) == 0 {
		iface, err := ipmatch.LookupExtIface(publicIP, "", "", stack, opts)
		if err != nil {
			return nil, fmt.Errorf("no usable interface: %w", err)
		}
		return iface, nil
	}
	for _, name := range o.ifaces {
		iface, err := ipmatch.LookupExtIface(name, "", "", stack, opts)
		if err == nil {
			return iface, nil
		}
		klog.Infof("interface %s not usable: %v", name, err)
	}
	return nil, fmt.Errorf("none of --iface %s is usable", o.ifaces.String())
}

func serveHealthz(ctx context.Context, wg *sync.WaitGroup, addr string, ready *atomic.Bool) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.Errorf("healthz server: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
}
