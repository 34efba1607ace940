package phases

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/config"
)

// KubeletServingSigner signs the kubelets' serving certificates; nothing
// in Kubernetes approves its requests: kubeforge does, after checking them.
const KubeletServingSigner = "kubernetes.io/kubelet-serving"

// PendingCSRs are the requests nobody approved or denied yet.
func PendingCSRs(ctx context.Context, env *Env) ([]cluster.CSR, error) {
	if !env.Client.Admin() {
		return nil, fmt.Errorf("no control plane to ask")
	}
	all, err := env.Client.CSRs(ctx)
	if err != nil {
		return nil, err
	}
	var out []cluster.CSR
	for _, c := range all {
		if c.State == "Pending" {
			out = append(out, c)
		}
	}
	return out, nil
}

// approveServingCSRs approves the pending kubelet-serving requests of the
// cluster file's nodes whose names and addresses check out, and reports
// the ones it refused. node narrows it to one node ("" for all).
func approveServingCSRs(ctx context.Context, client *cluster.Client, c *config.Cluster, node string) (approved []string, refused []error, err error) {
	csrs, err := client.CSRs(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, csr := range csrs {
		name, isNode := strings.CutPrefix(csr.Requestor, "system:node:")
		if csr.Signer != KubeletServingSigner || csr.State != "Pending" || !isNode || node != "" && name != node {
			continue
		}
		spec := c.Host(name)
		if spec == nil {
			refused = append(refused, fmt.Errorf("CSR %s from node %s: not a host of the cluster file: not approved", csr.Name, name))
			continue
		}
		if err := checkServingCSR(csr.Request, spec); err != nil {
			refused = append(refused, fmt.Errorf("CSR %s from node %s: %w: not approved", csr.Name, name, err))
			continue
		}
		if err := client.ApproveCSR(ctx, csr.Name, "kubeforge checked that it names only node "+name+" and its addresses"); err != nil {
			return approved, refused, err
		}
		approved = append(approved, csr.Name)
	}
	return approved, refused, nil
}
