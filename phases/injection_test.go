package phases

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/ssh"
)

// A cluster file may come from a repository or a pipeline: nothing in it
// may become a command on a host. Every field that reaches a host is
// either checked against its real grammar, or passed as data.

// The payloads: each would run a command if it were pasted into sh.
var shellPayloads = []string{"$(touch /tmp/pwned)", "`touch /tmp/pwned`", "a; touch /tmp/pwned", "a && touch /tmp/pwned",
	"a | sh", "a\ntouch /tmp/pwned", "'a'", "\"a\"", "a > /etc/passwd", "a#b", "a b"}

const injectionBase = `apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata: {name: inj}
spec:
  ssh: {user: root}
  controlPlane: {vip: 192.0.2.100}
  hosts:
    - {name: cp1, address: 192.0.2.11, roles: [control-plane]}
    - name: w1
      address: 192.0.2.12
      roles: [worker]
      labels: {zone: a}
`

func TestNoFieldCarriesShell(t *testing.T) {
	if _, _, err := config.Parse("base", []byte(injectionBase)); err != nil {
		t.Fatalf("the base file: %v", err)
	}
	// Each field that reaches a host (a command line, a unit, a
	// configuration a root process reads), and how the payload goes in.
	fields := []struct {
		path string
		set  func(base, payload string) string
	}{
		{"spec.hosts[1].labels.zone", func(b, p string) string { return strings.Replace(b, "{zone: a}", "{zone: "+q(p)+"}", 1) }},
		{"spec.hosts[1].labels", func(b, p string) string { return strings.Replace(b, "{zone: a}", "{"+q(p)+": a}", 1) }},
		{"spec.controlPlane.vipInterface", func(b, p string) string {
			return strings.Replace(b, "{vip: 192.0.2.100}", "{vip: 192.0.2.100, vipInterface: "+q(p)+"}", 1)
		}},
		{"spec.ssh.user", func(b, p string) string { return strings.Replace(b, "{user: root}", "{user: "+q(p)+"}", 1) }},
		{"spec.hosts[1].name", func(b, p string) string { return strings.Replace(b, "name: w1", "name: "+q(p), 1) }},
		{"spec.hosts[1].address", func(b, p string) string { return strings.Replace(b, "address: 192.0.2.12", "address: "+q(p), 1) }},
		{"spec.controlPlane.endpoint", func(b, p string) string {
			return strings.Replace(b, "{vip: 192.0.2.100}", "{vip: 192.0.2.100, endpoint: "+q(p+":6443")+"}", 1)
		}},
		{"spec.controlPlane.certSANs[0]", func(b, p string) string {
			return strings.Replace(b, "{vip: 192.0.2.100}", "{vip: 192.0.2.100, certSANs: ["+q(p)+"]}", 1)
		}},
		{"spec.ssh.bastion", func(b, p string) string {
			return strings.Replace(b, "{user: root}", "{user: root, bastion: "+q(p)+"}", 1)
		}},
		{"spec.ssh.sudoPasswordEnv", func(b, p string) string {
			return strings.Replace(b, "{user: root}", "{user: root, sudoPasswordEnv: "+q(p)+"}", 1)
		}},
		{"metadata.name", func(b, p string) string { return strings.Replace(b, "{name: inj}", "{name: "+q(p)+"}", 1) }},
		{"spec.networking.dnsDomain", func(b, p string) string { return b + "  networking: {dnsDomain: " + q(p) + "}\n" }},
		{"spec.networking.upstreamDNS[0]", func(b, p string) string { return b + "  networking: {upstreamDNS: [" + q(p) + "]}\n" }},
	}
	for _, f := range fields {
		for _, payload := range shellPayloads {
			_, _, err := config.Parse("inj", []byte(f.set(injectionBase, payload)))
			var inv *config.InvalidError
			if !errors.As(err, &inv) {
				t.Errorf("%s = %q: accepted", f.path, payload)
				continue
			}
			named := false
			for _, fe := range inv.Fields {
				named = named || strings.HasPrefix(fe.Path, f.path)
			}
			if !named {
				t.Errorf("%s = %q: refused, but not at the field: %v", f.path, payload, err)
			}
		}
	}
}

// q is a YAML double-quoted string.
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// commandLog is a transport that keeps every command and its input.
type commandLog struct {
	cmds, inputs []string
}

func (r *commandLog) Run(_ context.Context, cmd string, stdin io.Reader) (ssh.Result, error) {
	in := ""
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		in = string(b)
	}
	r.cmds, r.inputs = append(r.cmds, cmd), append(r.inputs, in)
	return ssh.Result{}, nil
}
func (r *commandLog) Put(context.Context, io.Reader, string) error { return nil }
func (r *commandLog) Get(context.Context, string, io.Writer) error { return nil }
func (r *commandLog) Close() error                                 { return nil }

// Labels reach the API as data, a merge patch of the node's labels
// exactly as written: no command runs on any host.
func TestLabelsGoAsData(t *testing.T) {
	value := "v1.2_release-candidate." + strings.Repeat("x", 63-len("v1.2_release-candidate."))
	c, _, err := config.Parse("labels", []byte(strings.Replace(injectionBase, "{zone: a}", `{"example.com/rack-row": "`+value+`"}`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rec := &commandLog{}
	api := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}})
	client := cluster.New(cluster.Options{Cluster: c, Admin: true,
		Connect: func(_ context.Context, spec *config.Host) (*host.Host, error) { return host.New(spec, rec), nil },
		NewAPI:  func(*host.Host) (kubernetes.Interface, error) { return api, nil }})
	if err := client.LabelNode(context.Background(), "w1", nodeLabels(c.Host("w1"))); err != nil {
		t.Fatal(err)
	}
	if len(rec.cmds) != 0 {
		t.Errorf("commands ran on the control plane: %q", rec.cmds)
	}
	node, err := api.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(node.Labels) != 1 || node.Labels["example.com/rack-row"] != value {
		t.Errorf("labels sent: %v", node.Labels)
	}
}
