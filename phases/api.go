package phases

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/host"
)

// apiClients caches one client per control host for the run.
var apiClients sync.Map // *host.Host -> kubernetes.Interface

// apiClient is a client of the API server on ctl as the state directory's
// super-admin, over a connection ctl opens to its own port (SSH port
// forwarding). Phases read the cluster with it instead of starting a
// kubectl process on a host whose cores its components need: on a
// 2-core host, each kubectl costs about 0.15 s of CPU. An error (no
// super-admin.conf here, a transport that cannot forward) means: ask
// with kubectl on the host.
func apiClient(env *Env, ctl *host.Host) (kubernetes.Interface, error) {
	if c, ok := apiClients.Load(ctl); ok {
		return c.(kubernetes.Interface), nil
	}
	path := filepath.Join(env.StateDir, certs.SuperAdminConf)
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The API server's certificate names 127.0.0.1: the connection is
	// checked against the cluster CA as any other.
	cfg.Host = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(env.Cluster.Spec.ControlPlane.Port))
	cfg.Dial = func(ctx context.Context, _, addr string) (net.Conn, error) { return ctl.Dial(ctx, addr) }
	cfg.Timeout = 10 * time.Second
	cfg.QPS, cfg.Burst = 50, 100
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	actual, _ := apiClients.LoadOrStore(ctl, c)
	return actual.(kubernetes.Interface), nil
}

// nodeReady reports whether the node exists and its Ready condition is
// True.
func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// getNode reads a node through c; found is false when it does not exist.
func getNode(ctx context.Context, c kubernetes.Interface, name string) (node *corev1.Node, found bool, err error) {
	node, err = c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return node, true, nil
}

// api is apiClient on the control host, or nil when there is none or it
// cannot be reached that way (then phases use kubectl).
func (e *Env) api(ctx context.Context) kubernetes.Interface {
	if e.ControlHost == nil {
		return nil
	}
	ctl, err := e.ControlHost(ctx)
	if err != nil {
		return nil
	}
	c, err := apiClient(e, ctl)
	if err != nil {
		return nil
	}
	return c
}
