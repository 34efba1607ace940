package cluster

import (
	"context"
	"time"

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
