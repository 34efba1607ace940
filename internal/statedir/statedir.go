// Package statedir owns the layout of a cluster's state directory on the
// admin machine (~/.kubeforge/<cluster>, or a joining machine's
// /var/lib/kubeforge/join): the PKI and kubeconfigs, known_hosts, the
// bootstrap token, logs and backups. Every path below it is spelled here.
package statedir

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kubeforge/kubeforge/certs"
)

// Dir is a state directory.
//
//	pki/..., admin.conf, super-admin.conf, nodes/<host>/...   the PKI (certs.Dir)
//	known_hosts                                              SSH host keys
//	bootstrap-token                                          the join token
//	logs/<action>-<time>.log                                 every run's log
//	backups/                                                 renewal backups, etcd snapshots
//	cache/archive-sums.json                                  sums of the bundle archives sent (ArchiveSum)
type Dir string

// Path is the directory itself.
func (d Dir) Path() string { return string(d) }

// String is its path, for messages.
func (d Dir) String() string { return string(d) }

// File is a path below the directory, given with slashes.
func (d Dir) File(rel string) string { return filepath.Join(string(d), filepath.FromSlash(rel)) }

// PKI is the certificates and kubeconfigs (certs' own layout).
func (d Dir) PKI() certs.Dir { return certs.Dir(d) }

// CACert is the cluster CA's certificate.
func (d Dir) CACert() string { return d.File(certs.PKIDir + "/" + certs.CABase + certs.CertExt) }

// ReadCA reads the cluster CA's certificate.
func (d Dir) ReadCA() ([]byte, error) { return os.ReadFile(d.CACert()) }

// HasCAKey reports whether the cluster CA's key is here: whoever holds it
// can issue node certificates.
func (d Dir) HasCAKey() bool { return certs.HasCAKey(d.PKI()) }

// SuperAdminConf is the kubeconfig of system:masters.
func (d Dir) SuperAdminConf() string { return d.File(certs.SuperAdminConf) }

// AdminConf is the kubeconfig of kubeadm:cluster-admins, for users.
func (d Dir) AdminConf() string { return d.File(certs.AdminConf) }

// Etcd is how kubeforge authenticates to etcd: its CA and the healthcheck
// client's certificate and key.
func (d Dir) Etcd() (ca, cert, key string) {
	pki := certs.PKIDir + "/"
	return d.File(pki + certs.EtcdCABase + certs.CertExt),
		d.File(pki + certs.EtcdHealthcheckClientBase + certs.CertExt),
		d.File(pki + certs.EtcdHealthcheckClientBase + certs.KeyExt)
}

// KnownHosts is the SSH host keys of the cluster's hosts.
func (d Dir) KnownHosts() string { return d.File("known_hosts") }

// Token is the file of the cluster's bootstrap token.
func (d Dir) Token() string { return d.File("bootstrap-token") }

// Logs holds a log file per run.
func (d Dir) Logs() string { return d.File("logs") }

// LogFile is the log of one run of action.
func (d Dir) LogFile(action string, t time.Time) string {
	return filepath.Join(d.Logs(), fmt.Sprintf("%s-%s.log", action, Stamp(t)))
}

// Backups holds the renewals' backups and etcd snapshots.
func (d Dir) Backups() string { return d.File(certs.BackupsDir) }

// Snapshot is where `etcd snapshot save` writes by default.
func (d Dir) Snapshot(cluster string, t time.Time) string {
	return filepath.Join(d.Backups(), fmt.Sprintf("etcd-%s-%s.db", cluster, Stamp(t)))
}

// Stamp names a run's files by its time, the same on every host.
func Stamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }
