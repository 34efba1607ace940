package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
)

// Ports etcd listens on.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// Member is an etcd member.
type Member struct {
	ID         uint64
	Name       string // empty until the member first starts
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// HexID is the member's ID as etcd prints it.
func (m Member) HexID() string { return strconv.FormatUint(m.ID, 16) }

// EtcdStatus is what one member says of itself.
type EtcdStatus struct {
	MemberID uint64
	Leader   uint64
	DBSize   int64
	Revision int64
	Version  string
}

// Etcd is an etcd cluster as reached through one host.
type Etcd interface {
	Members(ctx context.Context) ([]Member, error)
	// AddLearner adds a non-voting member (it copies the data before it
	// counts for the quorum).
	AddLearner(ctx context.Context, name, peerURL string) (Member, error)
	Promote(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
	// Health is nil when the member at endpoint serves a linearizable
	// read (the cluster has a quorum through it) and raises no alarm.
	Health(ctx context.Context, endpoint string) error
	Status(ctx context.Context, endpoint string) (EtcdStatus, error)
	// Stored returns, for each key under prefix, the first n bytes of its
	// value: enough to tell how the API server stored it (the
	// "k8s:enc:<provider>:v1:<key>:" of an encrypted value).
	Stored(ctx context.Context, prefix string, n int) (map[string][]byte, error)
}

// EtcdURL is a member's https URL at addr.
func EtcdURL(addr netip.Addr, port int) string {
	return "https://" + netip.AddrPortFrom(addr, uint16(port)).String()
}

// LocalEtcd is the member beside the host, on its loopback.
var LocalEtcd = EtcdURL(netip.MustParseAddr("127.0.0.1"), EtcdClientPort)

// PeerURL and ClientURL are a member host's etcd URLs.
func PeerURL(h *config.Host) string   { return EtcdURL(h.ClusterAddress(), EtcdPeerPort) }
func ClientURL(h *config.Host) string { return EtcdURL(h.ClusterAddress(), EtcdClientPort) }

// EtcdVia is the etcd cluster at endpoints, reached from through (over
// its SSH connection: the endpoints need answer only there).
func (c *Client) EtcdVia(ctx context.Context, through *host.Host, endpoints ...string) (Etcd, error) {
	if c.o.NewEtcd != nil {
		return c.o.NewEtcd(ctx, through, endpoints)
	}
	tlsConfig, err := c.etcdTLS()
	if err != nil {
		return nil, err
	}
	e := &etcdClient{through: through, tls: tlsConfig, endpoints: endpoints}
	c.onClose(e.close)
	return e, nil
}

// EtcdOn is the member on h, through its loopback.
func (c *Client) EtcdOn(ctx context.Context, h *host.Host) (Etcd, error) {
	return c.EtcdVia(ctx, h, LocalEtcd)
}

func (c *Client) etcdTLS() (*tls.Config, error) {
	caPEM, err := os.ReadFile(c.o.EtcdCA)
	if err != nil {
		return nil, &Error{Op: "etcd's CA", Kind: ErrForbidden, Err: err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &Error{Op: "etcd's CA", Kind: ErrInvalidAnswer, Err: fmt.Errorf("%s holds no certificate", c.o.EtcdCA)}
	}
	pair, err := tls.LoadX509KeyPair(c.o.EtcdCert, c.o.EtcdKey)
	if err != nil {
		return nil, &Error{Op: "etcd's client certificate", Kind: ErrForbidden, Err: err}
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// HealthyEtcdMember is the first etcd host, in file order, that can be
// reached and whose member is healthy.
func (c *Client) HealthyEtcdMember(ctx context.Context) (*host.Host, error) {
	var errs []error
	for _, spec := range c.o.Cluster.HostsWith(config.RoleEtcd) {
		h, err := c.o.Connect(ctx, spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e, err := c.EtcdOn(ctx, h)
		if err == nil {
			err = e.Health(ctx, LocalEtcd)
		}
		if err == nil {
			return h, nil
		}
		errs = append(errs, fmt.Errorf("host %s: its etcd member is not healthy: %w", h, err))
	}
	return nil, &Error{Op: "find a healthy etcd member", Kind: ErrUnavailable, Err: errors.Join(errs...)}
}

// WaitEtcdCluster waits until every member answers a health check from
// h: the next member may restart only then.
func (c *Client) WaitEtcdCluster(ctx context.Context, h *host.Host, timeout time.Duration) error {
	e, err := c.EtcdOn(ctx, h)
	if err != nil {
		return err
	}
	var last []string
	err = wait.For(ctx, timeout, func() (bool, error) {
		unhealthy, err := UnhealthyMembers(ctx, e)
		last = unhealthy
		return err == nil && len(unhealthy) == 0, err
	})
	if err != nil {
		return fmt.Errorf("the etcd cluster is not healthy (%s): %w (see journalctl -u etcd)", strings.Join(last, ", "), err)
	}
	return nil
}

// UnhealthyMembers names the members that fail a health check, each with
// why.
func UnhealthyMembers(ctx context.Context, e Etcd) ([]string, error) {
	members, err := e.Members(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range members {
		if len(m.ClientURLs) == 0 {
			out = append(out, m.HexID()+": not started")
			continue
		}
		if err := e.Health(ctx, m.ClientURLs[0]); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", m.Name, err))
		}
	}
	return out, nil
}

// etcdClient is etcd's Go client over a host's connection.
type etcdClient struct {
	through   *host.Host
	tls       *tls.Config
	endpoints []string

	mu      chan struct{}
	clients map[string]*clientv3.Client // by endpoint list
}

// commandTimeout bounds each request, as etcdctl's --command-timeout.
const commandTimeout = 10 * time.Second

func (e *etcdClient) client(endpoints ...string) (*clientv3.Client, error) {
	if e.mu == nil {
		e.mu = make(chan struct{}, 1)
		e.clients = map[string]*clientv3.Client{}
	}
	e.mu <- struct{}{}
	defer func() { <-e.mu }()
	key := strings.Join(endpoints, ",")
	if cli, ok := e.clients[key]; ok {
		return cli, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         e.tls.Clone(),
		DialTimeout: 3 * time.Second,
		// As etcdctl's --dial-timeout: a member that cannot be reached is
		// an error after 3 s, not a request that waits out its timeout.
		DialOptions: []grpc.DialOption{grpc.WithBlock(), grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return e.through.Dial(ctx, addr)
		})},
		Logger:                nopLogger(),
		AutoSyncInterval:      0,
		RejectOldCluster:      false,
		PermitWithoutStream:   false,
		MaxUnaryRetries:       2,
		BackoffWaitBetween:    200 * time.Millisecond,
		BackoffJitterFraction: 0.1,
	})
	if err != nil {
		return nil, wrap("connect to etcd at "+key+" through "+e.through.Name(), err)
	}
	e.clients[key] = cli
	return cli, nil
}

func (e *etcdClient) close() {
	if e.mu == nil {
		return
	}
	e.mu <- struct{}{}
	defer func() { <-e.mu }()
	for k, cli := range e.clients {
		cli.Close()
		delete(e.clients, k)
	}
}

func (e *etcdClient) Members(ctx context.Context) ([]Member, error) {
	cli, err := e.client(e.endpoints...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return nil, wrap("list the etcd members through "+strings.Join(e.endpoints, ","), err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (e *etcdClient) Stored(ctx context.Context, prefix string, n int) (map[string][]byte, error) {
	cli, err := e.client(e.endpoints...)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	// Pages of 500 keys, each request bounded as one etcdctl command.
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		rctx, cancel := context.WithTimeout(ctx, commandTimeout)
		resp, err := cli.Get(rctx, start, clientv3.WithRange(end), clientv3.WithLimit(500))
		cancel()
		if err != nil {
			return nil, wrap("read "+prefix+" in etcd through "+strings.Join(e.endpoints, ","), err)
		}
		for _, kv := range resp.Kvs {
			v := kv.Value
			if len(v) > n {
				v = v[:n]
			}
			out[string(kv.Key)] = append([]byte(nil), v...)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (e *etcdClient) AddLearner(ctx context.Context, name, peerURL string) (Member, error) {
	cli, err := e.client(e.endpoints...)
	if err != nil {
		return Member{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	resp, err := cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return Member{}, wrap("add "+name+" to the etcd cluster", err)
	}
	return Member{ID: resp.Member.ID, Name: name, PeerURLs: resp.Member.PeerURLs, Learner: true}, nil
}

func (e *etcdClient) Promote(ctx context.Context, id uint64) error {
	cli, err := e.client(e.endpoints...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	_, err = cli.MemberPromote(ctx, id)
	return wrap("promote the etcd learner "+strconv.FormatUint(id, 16), err)
}

func (e *etcdClient) Remove(ctx context.Context, id uint64) error {
	cli, err := e.client(e.endpoints...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	_, err = cli.MemberRemove(ctx, id)
	return wrap("remove the etcd member "+strconv.FormatUint(id, 16), err)
}

func (e *etcdClient) Health(ctx context.Context, endpoint string) error {
	cli, err := e.client(endpoint)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	// As etcdctl endpoint health: a linearizable read goes through the
	// raft log; permission denied is an answer too.
	if _, err := cli.Get(ctx, "health"); err != nil && !errors.Is(rpctypes.Error(err), rpctypes.ErrPermissionDenied) {
		return wrap("etcd health at "+endpoint, err)
	}
	alarms, err := cli.AlarmList(ctx)
	if err != nil {
		return wrap("etcd alarms at "+endpoint, err)
	}
	if len(alarms.Alarms) > 0 {
		var names []string
		for _, a := range alarms.Alarms {
			names = append(names, a.Alarm.String())
		}
		return &Error{Op: "etcd health at " + endpoint, Kind: ErrUnavailable, Err: fmt.Errorf("active alarms: %s", strings.Join(names, ", "))}
	}
	return nil
}

func (e *etcdClient) Status(ctx context.Context, endpoint string) (EtcdStatus, error) {
	cli, err := e.client(endpoint)
	if err != nil {
		return EtcdStatus{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	s, err := cli.Status(ctx, endpoint)
	if err != nil {
		return EtcdStatus{}, wrap("etcd status at "+endpoint, err)
	}
	return EtcdStatus{MemberID: s.Header.MemberId, Leader: s.Leader, DBSize: s.DbSize, Revision: s.Header.Revision, Version: s.Version}, nil
}
