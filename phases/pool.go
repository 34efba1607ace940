package phases

import (
	"context"
	"sync"

	"github.com/kubeforge/kubeforge/internal/cleanup"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// ConnectFunc opens a host.
type ConnectFunc func(ctx context.Context, spec *config.Host) (*host.Host, error)

// Pool keeps one connection per host for the whole run: every step reuses
// it. A host that failed to connect keeps its error.
type Pool struct {
	connect ConnectFunc
	mu      sync.Mutex
	conns   map[string]*poolEntry
	closers cleanup.List // what the run opened over its connections
}

type poolEntry struct {
	once sync.Once
	h    *host.Host
	err  error
}

// NewPool returns a pool that opens hosts with connect.
func NewPool(connect ConnectFunc) *Pool {
	return &Pool{connect: connect, conns: map[string]*poolEntry{}}
}

// Get returns the connected host, connecting on first use.
func (p *Pool) Get(ctx context.Context, spec *config.Host) (*host.Host, error) {
	p.mu.Lock()
	e, ok := p.conns[spec.Name]
	if !ok {
		e = &poolEntry{}
		p.conns[spec.Name] = e
	}
	p.mu.Unlock()
	e.once.Do(func() { e.h, e.err = p.connect(ctx, spec) })
	return e.h, e.err
}

// Connected returns the hosts connected so far, by name.
func (p *Pool) Connected() map[string]*host.Host {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]*host.Host{}
	for n, e := range p.conns {
		if e.h != nil {
			out[n] = e.h
		}
	}
	return out
}

// Close closes what was opened over the connections (the cluster
// client), then every connection.
func (p *Pool) Close() {
	p.closers.Run()
	for _, h := range p.Connected() {
		h.Close()
	}
}

// Client is the run's cluster client: it reaches hosts through the pool
// and is closed with it.
func (p *Pool) Client(o cluster.Options) *cluster.Client {
	o.Connect = p.Get
	c := cluster.New(o)
	p.closers.Add(func() { c.Close() })
	return c
}
