package certs

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"path"
	"strings"
	"time"
)

// Who renews a certificate, as check-expiration reports it.
const (
	RotatedByKubeforge     = "kubeforge certs renew"
	RotatedByKubelet       = "the kubelet (automatic)"
	RotatedByKubeletServer = "the kubelet; kubeforge approves"
	RotatedSelfSigned      = "the kubelet (self-signed)"
	RotatedNever           = "CA: not renewed"
)

// HostCert is one certificate found on a node.
type HostCert struct {
	Node      string        `json:"node"`
	Name      string        `json:"name"`
	Path      string        `json:"path"`
	Subject   string        `json:"subject,omitempty"`
	Serial    string        `json:"serial,omitempty"`
	NotAfter  time.Time     `json:"notAfter,omitempty"`
	Residual  time.Duration `json:"residual,omitempty"`
	CA        string        `json:"signedBy,omitempty"`
	IsCA      bool          `json:"isCA"`
	RotatedBy string        `json:"rotatedBy"`
	Error     string        `json:"error,omitempty"`
}

// Expired reports whether the certificate has expired.
func (c HostCert) Expired() bool { return c.Error == "" && c.Residual <= 0 }

// InventoryScript prints, for every certificate file and kubeconfig on a
// node, "@@file PATH" or "@@conf PATH" and then only the certificate:
// private keys never leave the host (kubelet-client-current.pem holds
// both, and a kubeconfig its client key).
const InventoryScript = `exec 2>/dev/null
for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt /var/lib/kubelet/pki/kubelet-client-current.pem /var/lib/kubelet/pki/kubelet-server-current.pem /var/lib/kubelet/pki/kubelet.crt; do
  [ -f "$f" ] || continue
  echo "@@file $f"
  sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$f" | sed -n '1,/-----END CERTIFICATE-----/p'
done
for f in /etc/kubernetes/*.conf; do
  [ -f "$f" ] || continue
  d=$(sed -n 's/^ *client-certificate-data: *//p' "$f" | head -1)
  [ -n "$d" ] && echo "@@conf $f" && echo "$d"
done
true
`

// Authorities' certificates, to name who signed what.
type CAPool map[string]*x509.Certificate

// ReadCAs reads the three CAs' certificates of a PKI directory.
func ReadCAs(dir Dir) (CAPool, error) {
	out := CAPool{}
	for _, a := range Authorities() {
		cert, err := dir.readCert(a.CertPath())
		if err != nil {
			return nil, err
		}
		out[a.Name] = cert
	}
	return out, nil
}

func (p CAPool) signer(cert *x509.Certificate) string {
	for name, ca := range p {
		if cert.Equal(ca) {
			return "self-signed (" + name + ")"
		}
	}
	for name, ca := range p {
		if cert.CheckSignatureFrom(ca) == nil {
			return name
		}
	}
	if string(cert.RawIssuer) == string(cert.RawSubject) {
		return "self-signed"
	}
	return "unknown issuer " + cert.Issuer.String()
}

// ParseInventory reads InventoryScript's output from node.
func ParseInventory(node, out string, cas CAPool, now time.Time) []HostCert {
	var res []HostCert
	var cur *HostCert
	var body strings.Builder
	flush := func() {
		if cur == nil {
			return
		}
		cur.fill(body.String(), cas, now)
		res = append(res, *cur)
		cur = nil
		body.Reset()
	}
	for _, line := range strings.Split(out, "\n") {
		if kind, p, ok := strings.Cut(line, " "); ok && (kind == "@@file" || kind == "@@conf") {
			flush()
			cur = &HostCert{Node: node, Path: p, Name: hostCertName(p)}
			if kind == "@@conf" {
				cur.Path = p + " (client certificate)"
			}
			continue
		}
		body.WriteString(line)
		body.WriteString("\n")
	}
	flush()
	return res
}

// fill parses the certificate of a PEM block or a kubeconfig's base64.
func (c *HostCert) fill(data string, cas CAPool, now time.Time) {
	raw := []byte(strings.TrimSpace(data))
	if !strings.HasPrefix(string(raw), "-----BEGIN") {
		dec, err := base64.StdEncoding.DecodeString(string(raw))
		if err != nil {
			c.Error = "not base64"
			return
		}
		raw = dec
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		c.Error = "no certificate"
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		c.Error = err.Error()
		return
	}
	c.Subject = cert.Subject.String()
	c.Serial = fmt.Sprintf("%x", cert.SerialNumber)
	c.NotAfter = cert.NotAfter.UTC()
	c.Residual = cert.NotAfter.Sub(now).Truncate(time.Second)
	c.IsCA = cert.IsCA
	c.CA = cas.signer(cert)
	switch {
	case cert.IsCA:
		c.RotatedBy = RotatedNever
	case strings.HasSuffix(c.Path, "kubelet-client-current.pem"):
		c.RotatedBy = RotatedByKubelet
	case strings.HasSuffix(c.Path, "kubelet-server-current.pem"):
		c.RotatedBy = RotatedByKubeletServer
	case strings.HasSuffix(c.Path, "/kubelet.crt"):
		c.RotatedBy = RotatedSelfSigned
	default:
		c.RotatedBy = RotatedByKubeforge
	}
}

// hostCertName names a file of a node by the table's names.
func hostCertName(p string) string {
	base := path.Base(p)
	switch {
	case strings.HasPrefix(p, "/etc/kubernetes/pki/etcd/"):
		switch strings.TrimSuffix(base, CertExt) {
		case "ca":
			return EtcdCAName
		case "server":
			return EtcdServerName
		case "peer":
			return EtcdPeerName
		case "healthcheck-client":
			return EtcdHealthcheckClientName
		}
	case strings.HasPrefix(p, "/etc/kubernetes/pki/"):
		return strings.TrimSuffix(base, CertExt)
	case base == "kubelet-client-current.pem":
		return "kubelet-client"
	case base == "kubelet-server-current.pem", base == "kubelet.crt":
		return "kubelet-serving"
	}
	return base
}
