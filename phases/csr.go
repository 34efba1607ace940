package phases

import (
	"context"
	"fmt"

	"github.com/kubeforge/kubeforge/internal/cluster"
)

// KubeletServingSigner signs the kubelets' serving certificates.
const KubeletServingSigner = cluster.KubeletServingSigner

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
