package certs

// File layout of a PKI directory. It mirrors /etc/kubernetes on a control
// plane (kubeadm's layout), plus nodes/<name>/ for what differs per host:
//
//	DIR/pki/ca.{crt,key}                   DIR/admin.conf
//	DIR/pki/front-proxy-client.{crt,key} . DIR/super-admin.conf
//	DIR/pki/etcd/ca.{crt,key} ...          DIR/controller-manager.conf ...
//	DIR/pki/sa.{key,pub}                   DIR/nodes/<name>/kubelet.conf
//	DIR/nodes/<name>/pki/apiserver.{crt,key}     (each control plane's own)
//	DIR/nodes/<name>/pki/etcd/{server,peer}.{crt,key}
//	DIR/backups/<time>/...                 (renewal backups)
const (
	PKIDir     = "pki"
	NodesDir   = "nodes"
	BackupsDir = "backups"

	CertExt = ".crt"
	KeyExt  = ".key"
	PubExt  = ".pub"
)

// Names of the certificate authorities, as `certs renew` and
// check-expiration show them, and their base names under pki/.
const (
	CAName            = "ca"
	EtcdCAName        = "etcd-ca"
	FrontProxyCAName  = "front-proxy-ca"
	CABase            = "ca"
	EtcdCABase        = "etcd/ca"
	FrontProxyCABase  = "front-proxy-ca"
	ServiceAccountKey = "sa"
)

// Names of the leaf certificates (kubeadm's names) and their base names.
const (
	APIServerName             = "apiserver"
	APIServerKubeletClient    = "apiserver-kubelet-client"
	APIServerEtcdClient       = "apiserver-etcd-client"
	FrontProxyClient          = "front-proxy-client"
	EtcdServerName            = "etcd-server"
	EtcdPeerName              = "etcd-peer"
	EtcdHealthcheckClientName = "etcd-healthcheck-client"

	EtcdServerBase            = "etcd/server"
	EtcdPeerBase              = "etcd/peer"
	EtcdHealthcheckClientBase = "etcd/healthcheck-client"
)

// Kubeconfig files.
const (
	AdminConf             = "admin.conf"
	SuperAdminConf        = "super-admin.conf"
	ControllerManagerConf = "controller-manager.conf"
	SchedulerConf         = "scheduler.conf"
	KubeProxyConf         = "kube-proxy.conf"
	KubeletConf           = "kubelet.conf"
)

// Subjects Kubernetes and kubeadm v1.35 give these identities.
const (
	APIServerCN              = "kube-apiserver"
	APIServerKubeletClientCN = "kube-apiserver-kubelet-client"
	APIServerEtcdClientCN    = "kube-apiserver-etcd-client"
	FrontProxyClientCN       = "front-proxy-client"
	EtcdHealthcheckClientCN  = "kube-etcd-healthcheck-client"

	AdminCN             = "kubernetes-admin"
	SuperAdminCN        = "kubernetes-super-admin"
	ControllerManagerCN = "system:kube-controller-manager"
	SchedulerCN         = "system:kube-scheduler"
	NodeCNPrefix        = "system:node:"

	// ClusterAdminsGroup is bound to cluster-admin by RBAC at init; unlike
	// system:masters it can be revoked.
	ClusterAdminsGroup = "kubeadm:cluster-admins"
	MastersGroup       = "system:masters"
	NodesGroup         = "system:nodes"
)
