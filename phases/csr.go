package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/internal/host"
)

// KubeletServingSigner signs the kubelets' serving certificates; nothing
// in Kubernetes approves its requests: kubeforge does, after checking them.
const KubeletServingSigner = "kubernetes.io/kubelet-serving"

// CSR is a certificate signing request as kubeforge looks at it.
type CSR struct {
	Name      string    `json:"name"`
	Signer    string    `json:"signer"`
	Requestor string    `json:"requestor"`
	Created   time.Time `json:"created"`
	Request   []byte    `json:"-"`
	// State is Pending, Approved or Denied (or Failed).
	State string `json:"state"`
}

// listCSRs lists the cluster's CSRs as the admin, from a control plane.
func listCSRs(ctx context.Context, ctl *host.Host, port int) ([]CSR, error) {
	out, err := ctl.Run(ctx, kubectlLocal(port, "get csr -o json"))
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string
				CreationTimestamp time.Time `json:"creationTimestamp"`
			}
			Spec struct {
				SignerName string `json:"signerName"`
				Username   string
				Request    []byte
			}
			Status struct {
				Conditions []struct{ Type string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get csr: %w", err)
	}
	csrs := make([]CSR, 0, len(list.Items))
	for _, i := range list.Items {
		c := CSR{Name: i.Metadata.Name, Signer: i.Spec.SignerName, Requestor: i.Spec.Username,
			Created: i.Metadata.CreationTimestamp, Request: i.Spec.Request, State: "Pending"}
		if len(i.Status.Conditions) > 0 {
			c.State = i.Status.Conditions[0].Type
		}
		csrs = append(csrs, c)
	}
	return csrs, nil
}

// PendingCSRs are the requests nobody approved or denied yet.
func PendingCSRs(ctx context.Context, env *Env) ([]CSR, error) {
	if env.ControlHost == nil {
		return nil, fmt.Errorf("no control plane to ask")
	}
	ctl, err := env.ControlHost(ctx)
	if err != nil {
		return nil, err
	}
	all, err := listCSRs(ctx, ctl, env.Cluster.Spec.ControlPlane.Port)
	if err != nil {
		return nil, err
	}
	var out []CSR
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
func approveServingCSRs(ctx context.Context, ctl *host.Host, c *config.Cluster, node string) (approved []string, refused []error, err error) {
	port := c.Spec.ControlPlane.Port
	csrs, err := listCSRs(ctx, ctl, port)
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
		if _, err := ctl.Run(ctx, kubectlLocal(port, "certificate approve "+csr.Name)); err != nil {
			return approved, refused, err
		}
		approved = append(approved, csr.Name)
	}
	return approved, refused, nil
}
