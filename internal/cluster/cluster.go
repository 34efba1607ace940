// Package cluster is the one place kubeforge asks the running cluster
// anything: the Kubernetes API (client-go, as the state directory's
// super-admin, through a control plane's own port over its SSH connection)
// and etcd (its Go client, with the healthcheck certificate, through a
// member's connection). Phases and commands get typed answers and typed
// errors; no command output is parsed and no error matched by its text
// outside this package.
//
// A Client belongs to one run: it keeps one API client per control plane
// it reached, and is closed with the run's connections.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/client-go/kubernetes"

	"github.com/kubeforge/kubeforge/internal/cleanup"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// Connector opens a host of the cluster (the run's pool).
type Connector func(ctx context.Context, spec *config.Host) (*host.Host, error)

// Options say how a Client reaches the cluster.
type Options struct {
	Cluster *config.Cluster
	// Connect opens the hosts the client talks through.
	Connect Connector
	// Kubeconfig is the identity the API is asked as: the state
	// directory's super-admin.conf, or a node's own kubelet.conf.
	Kubeconfig string
	// Admin says the identity is the cluster's admin (it may label
	// nodes, approve CSRs, read every object); a node's own identity is
	// not.
	Admin bool
	// Through, when set, is the only host the API is reached through (a
	// machine joining on its own: itself). Otherwise the first control
	// plane of the cluster file whose API server is ready.
	Through *config.Host
	// Endpoint asks the API server at the kubeconfig's own address
	// (the cluster's endpoint) instead of a control plane's loopback:
	// for a worker, which runs no API server.
	Endpoint bool
	// Server, Token and CAData ask the API from this machine directly,
	// as a bearer token, trusting only that CA: a machine joining with a
	// bootstrap token, before it is part of anything.
	Server string
	Token  string
	CAData []byte
	// CACert is the cluster CA's certificate file (the endpoint's check).
	CACert string
	// Etcd is the etcd client's certificate: CA, certificate, key files.
	EtcdCA, EtcdCert, EtcdKey string
	Log                       *slog.Logger

	// For tests: build the API and etcd clients instead of dialling.
	NewAPI  func(through *host.Host) (kubernetes.Interface, error)
	NewEtcd func(ctx context.Context, through *host.Host, endpoints []string) (Etcd, error)
}

// Client asks one cluster, for one run.
type Client struct {
	o Options

	mu      sync.Mutex
	apis    map[string]kubernetes.Interface // by the host reached through
	dyns    map[string]*dynamicAPI
	closers cleanup.List

	controlMu sync.Mutex
	control   *host.Host // the control host, once one was ready
}

// New is a client of o.Cluster; nothing is contacted until asked.
func New(o Options) *Client {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Client{o: o, apis: map[string]kubernetes.Interface{}, dyns: map[string]*dynamicAPI{}}
}

// Admin reports whether the client asks as the cluster's admin.
func (c *Client) Admin() bool { return c != nil && c.o.Admin }

// Close releases what the client opened (etcd connections); the hosts'
// connections belong to the run's pool.
func (c *Client) Close() error {
	c.closers.Run()
	return nil
}

func (c *Client) onClose(f func()) { c.closers.Add(f) }

// ControlHost is the host the API is asked through: Options.Through, or
// the first control plane, in file order, that can be reached and whose
// API server is ready, so one control plane down does not stop a run. The
// choice is kept once a ready one is found; until then the first one
// reached is returned (a new cluster's first control plane while it comes
// up).
func (c *Client) ControlHost(ctx context.Context) (*host.Host, error) {
	if c.o.Through != nil {
		return c.o.Connect(ctx, c.o.Through)
	}
	c.controlMu.Lock()
	defer c.controlMu.Unlock()
	if c.control != nil {
		return c.control, nil
	}
	cps := c.o.Cluster.HostsWith(config.RoleControlPlane)
	if len(cps) == 0 {
		return nil, errors.New("the cluster file has no control plane")
	}
	var first *host.Host
	var errs []error
	for _, spec := range cps {
		h, err := c.o.Connect(ctx, spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if first == nil {
			first = h
		}
		ok, err := c.ready(ctx, h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			c.control = h
			return h, nil
		}
	}
	if first != nil {
		return first, nil
	}
	return nil, &Error{Op: "reach a control plane", Kind: ErrUnreachable, Err: errors.Join(errs...)}
}

// port is the API servers' port.
func (c *Client) port() int { return c.o.Cluster.Spec.ControlPlane.Port }

func (c *Client) logf(format string, args ...any) {
	c.o.Log.Debug(fmt.Sprintf(format, args...))
}
