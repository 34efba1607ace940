package certs

import (
	"os"
	"path"
	"sort"
	"strings"
)

// discoverSpec builds a spec from what a directory holds: the nodes with
// API server or etcd certificates and the nodes with kubelet kubeconfigs. Renewal and
// expiry checks use it to find every per-node file without a cluster file.
func discoverSpec(dir Dir) Spec {
	var s Spec
	entries, _ := os.ReadDir(dir.path(NodesDir))
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		node := Node{Name: n}
		if dir.exists(path.Join(NodesDir, n, PKIDir, APIServerName+CertExt)) {
			s.ControlPlanes = append(s.ControlPlanes, node)
		}
		if dir.exists(path.Join(NodesDir, n, PKIDir, EtcdServerBase+CertExt)) || dir.exists(path.Join(NodesDir, n, PKIDir, EtcdPeerBase+CertExt)) {
			s.EtcdMembers = append(s.EtcdMembers, node)
		}
		if dir.exists(path.Join(NodesDir, n, KubeletConf)) {
			s.KubeletNodes = append(s.KubeletNodes, node)
		}
	}
	return s
}

// displayName names a file of the directory for reports: the table's
// name when it is one of the table's files, else its path.
func displayName(dir Dir, rel string) string {
	s := discoverSpec(dir)
	for _, a := range Authorities() {
		if a.CertPath() == rel {
			return a.Name
		}
	}
	for _, c := range Certs(s) {
		if c.CertPath() == rel {
			return c.DisplayName()
		}
	}
	for _, k := range Kubeconfigs(s) {
		if k.Path() == rel {
			return k.DisplayName()
		}
	}
	return strings.TrimSuffix(rel, CertExt)
}
