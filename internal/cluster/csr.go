package cluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/internal/config"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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

// CSRs lists the cluster's certificate signing requests.
func (c *Client) CSRs(ctx context.Context) ([]CSR, error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	list, err := api.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, wrap("list the certificate signing requests", err)
	}
	out := make([]CSR, 0, len(list.Items))
	for _, i := range list.Items {
		s := CSR{Name: i.Name, Signer: i.Spec.SignerName, Requestor: i.Spec.Username,
			Created: i.CreationTimestamp.Time, Request: i.Spec.Request, State: "Pending"}
		if len(i.Status.Conditions) > 0 {
			s.State = string(i.Status.Conditions[0].Type)
		}
		out = append(out, s)
	}
	return out, nil
}

// ApproveCSR approves a request, saying why.
func (c *Client) ApproveCSR(ctx context.Context, name, reason string) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	csrs := api.CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return wrap("get certificate signing request "+name, err)
	}
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "KubeforgeApprove", Message: reason, LastUpdateTime: metav1.Now(),
	})
	_, err = csrs.UpdateApproval(ctx, name, csr, metav1.UpdateOptions{FieldManager: FieldManager})
	return wrap("approve certificate signing request "+name, err)
}

// KubeletServingSigner signs the kubelets' serving certificates; nothing
// in Kubernetes approves its requests: kubeforge does, after checking them.
const KubeletServingSigner = "kubernetes.io/kubelet-serving"

// ApproveServingCSRs approves the pending kubelet-serving requests of the
// cluster file's nodes whose names and addresses check out
// (CheckServingCSR), and reports the ones it refused. node narrows it to
// one node ("" for all). The kube-controller-manager approves client
// certificates only; a serving certificate proves the node owns its
// addresses, which only the installer knows.
func (c *Client) ApproveServingCSRs(ctx context.Context, node string) (approved []string, refused []error, err error) {
	csrs, err := c.CSRs(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, csr := range csrs {
		name, isNode := strings.CutPrefix(csr.Requestor, "system:node:")
		if csr.Signer != KubeletServingSigner || csr.State != "Pending" || !isNode || node != "" && name != node {
			continue
		}
		spec := c.o.Cluster.Host(name)
		if spec == nil {
			refused = append(refused, fmt.Errorf("CSR %s from node %s: not a host of the cluster file: not approved", csr.Name, name))
			continue
		}
		if err := CheckServingCSR(csr.Request, spec); err != nil {
			refused = append(refused, fmt.Errorf("CSR %s from node %s: %w: not approved", csr.Name, name, err))
			continue
		}
		if err := c.ApproveCSR(ctx, csr.Name, "kubeforge checked that it names only node "+name+" and its addresses"); err != nil {
			return approved, refused, err
		}
		approved = append(approved, csr.Name)
	}
	return approved, refused, nil
}

// CheckServingCSR accepts a serving certificate request only for the
// node's own name and addresses.
func CheckServingCSR(request []byte, h *config.Host) error {
	block, _ := pem.Decode(request)
	if block == nil {
		return fmt.Errorf("not a PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return err
	}
	if req.Subject.CommonName != "system:node:"+h.Name {
		return fmt.Errorf("subject %s is not node %s", req.Subject.CommonName, h.Name)
	}
	for _, n := range req.DNSNames {
		if n != h.Name && n != h.Address {
			return fmt.Errorf("asks for the name %s", n)
		}
	}
	allowed := []net.IP{net.IP(h.ClusterAddress().AsSlice())}
	if a, err := netip.ParseAddr(h.Address); err == nil {
		allowed = append(allowed, net.IP(a.AsSlice()))
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(allowed, ip.Equal) {
			return fmt.Errorf("asks for the address %s", ip)
		}
	}
	return nil
}
