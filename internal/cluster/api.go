package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeforge/kubeforge/internal/host"
)

// api is the API client through the control host, or from here for a
// client of a Server.
func (c *Client) api(ctx context.Context) (kubernetes.Interface, error) {
	if c.o.Server != "" {
		return c.apiDirect()
	}
	h, err := c.ControlHost(ctx)
	if err != nil {
		return nil, err
	}
	return c.apiThrough(h)
}

// apiThrough is the API client that reaches the API server through h:
// h's own (127.0.0.1 is in every API server's certificate), or the
// endpoint for a client of a node's own identity. On a 2-core host each
// kubectl process costs about 0.15 s of CPU; a request through the SSH
// connection costs the host nothing but the API server's work.
func (c *Client) apiThrough(h *host.Host) (kubernetes.Interface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if api, ok := c.apis[h.Name()]; ok {
		return api, nil
	}
	var api kubernetes.Interface
	var err error
	if c.o.NewAPI != nil {
		api, err = c.o.NewAPI(h)
	} else {
		api, err = c.newAPI(h)
	}
	if err != nil {
		return nil, err
	}
	c.apis[h.Name()] = api
	return api, nil
}

func (c *Client) restConfig(h *host.Host) (*rest.Config, error) {
	if _, err := os.Stat(c.o.Kubeconfig); err != nil {
		return nil, &Error{Op: "the API's credentials", Kind: ErrForbidden,
			Err: fmt.Errorf("%w (run 'kubeforge init phase certs' to make them)", err)}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.o.Kubeconfig)
	if err != nil {
		return nil, &Error{Op: "read " + c.o.Kubeconfig, Kind: ErrInvalidAnswer, Err: err}
	}
	if !c.o.Endpoint {
		cfg.Host = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port()))
	}
	cfg.Dial = func(ctx context.Context, _, addr string) (net.Conn, error) { return h.Dial(ctx, addr) }
	cfg.Timeout = 10 * time.Second
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "kubeforge"
	return cfg, nil
}

func (c *Client) newAPI(h *host.Host) (kubernetes.Interface, error) {
	cfg, err := c.restConfig(h)
	if err != nil {
		return nil, err
	}
	api, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, wrap("an API client", err)
	}
	return api, nil
}

// apiDirect is the client of Options.Server, from this machine.
func (c *Client) apiDirect() (kubernetes.Interface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if api, ok := c.apis[""]; ok {
		return api, nil
	}
	var api kubernetes.Interface
	var err error
	if c.o.NewAPI != nil {
		api, err = c.o.NewAPI(nil)
	} else {
		api, err = kubernetes.NewForConfig(&rest.Config{
			Host:            c.o.Server,
			BearerToken:     c.o.Token,
			TLSClientConfig: rest.TLSClientConfig{CAData: c.o.CAData},
			Timeout:         15 * time.Second,
			UserAgent:       "kubeforge-join",
		})
	}
	if err != nil {
		return nil, wrap("an API client", err)
	}
	c.apis[""] = api
	return api, nil
}
