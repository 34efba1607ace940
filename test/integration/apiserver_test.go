//go:build integration

// Package integration starts the bundled components as real processes on
// this machine. `make integration` (part of `make test`) builds them first
// and sets KUBEFORGE_BIN.
package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeforge/kubeforge/certs"
)

func kubeBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KUBEFORGE_BIN")
	if dir == "" {
		t.Fatal("KUBEFORGE_BIN is not set: run this test with 'make integration'")
	}
	kube := filepath.Join(dir, "kube")
	if _, err := os.Stat(kube); err != nil {
		t.Fatalf("%v: run 'make build' first", err)
	}
	return kube
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs `kube <component> args...` until the test ends; its
// output goes to <dir>/<component>.log, shown if the test fails.
func startProcess(t *testing.T, kube, dir, component string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, component+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kube, append([]string{component}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("last lines of %s:\n%s", component, strings.Join(lines, "\n"))
		}
	})
}

// TestEtcdAndAPIServer proves the bundle and the PKI are real: the
// multicall binary's etcd and kube-apiserver, with certificates from
// package certs, serve over mutual TLS what the bundled kubectl asks with
// the generated kubeconfigs.
func TestEtcdAndAPIServer(t *testing.T) {
	kube := kubeBinary(t)
	dir := t.TempDir()
	clientPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	node := certs.Node{Name: "it-node", IP: netip.MustParseAddr("127.0.0.1")}
	spec := certs.Spec{
		ClusterName: "it", Endpoint: fmt.Sprintf("127.0.0.1:%d", apiPort), APIServerPort: apiPort,
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"), DNSDomain: "cluster.local",
		ControlPlanes: []certs.Node{node}, EtcdMembers: []certs.Node{node}, KubeletNodes: []certs.Node{node},
		Key: certs.ECDSAP256, CAValidity: 24 * time.Hour, Validity: time.Hour,
	}
	pkiDir := filepath.Join(dir, "state")
	if _, err := certs.Generate(spec, certs.Dir(pkiDir), certs.Options{}); err != nil {
		t.Fatal(err)
	}
	pki := func(rel string) string { return filepath.Join(pkiDir, rel) }

	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("https://127.0.0.1:%d", peerPort)
	member := "nodes/it-node/pki/etcd/"
	startProcess(t, kube, dir, "etcd",
		"--name=it-node", "--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=it-node="+peerURL,
		"--cert-file="+pki(member+"server.crt"), "--key-file="+pki(member+"server.key"),
		"--client-cert-auth", "--trusted-ca-file="+pki("pki/etcd/ca.crt"),
		"--peer-cert-file="+pki(member+"peer.crt"), "--peer-key-file="+pki(member+"peer.key"),
		"--peer-client-cert-auth", "--peer-trusted-ca-file="+pki("pki/etcd/ca.crt"))
	startProcess(t, kube, dir, "kube-apiserver",
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		// Since v1.37 the kubernetes Service's endpoint may not be loopback;
		// this one-process API server has no other address.
		"--endpoint-reconciler-type=none",
		"--etcd-servers="+etcdURL, "--etcd-cafile="+pki("pki/etcd/ca.crt"),
		"--etcd-certfile="+pki("pki/apiserver-etcd-client.crt"), "--etcd-keyfile="+pki("pki/apiserver-etcd-client.key"),
		"--tls-cert-file="+pki("nodes/"+node.Name+"/pki/apiserver.crt"), "--tls-private-key-file="+pki("nodes/"+node.Name+"/pki/apiserver.key"),
		"--client-ca-file="+pki("pki/ca.crt"), "--authorization-mode=Node,RBAC",
		"--kubelet-client-certificate="+pki("pki/apiserver-kubelet-client.crt"), "--kubelet-client-key="+pki("pki/apiserver-kubelet-client.key"),
		"--requestheader-client-ca-file="+pki("pki/front-proxy-ca.crt"), "--proxy-client-cert-file="+pki("pki/front-proxy-client.crt"),
		"--proxy-client-key-file="+pki("pki/front-proxy-client.key"), "--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pki("pki/sa.pub"), "--service-account-signing-key-file="+pki("pki/sa.key"))

	kubectl := func(kubeconfig string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, kube, append([]string{"kubectl", "--kubeconfig=" + pki(kubeconfig)}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := kubectl(certs.SuperAdminConf, "get", "--raw", "/readyz")
		if err == nil && out == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("apiserver not ready after 3m: %s", out)
		}
		time.Sleep(time.Second)
	}

	// keepalived's track script: ready through the cluster CA, anonymously,
	// and not when the certificate does not chain to the CA it is given.
	check := filepath.Join(filepath.Dir(kube), "kube-apiserver-check")
	port := fmt.Sprint(apiPort)
	if out, err := exec.Command(check, "-port", port, "-cacert", pki("pki/ca.crt")).CombinedOutput(); err != nil {
		t.Errorf("kube-apiserver-check against a ready API server: %v: %s", err, out)
	}
	if out, err := exec.Command(check, "-port", port, "-cacert", pki("pki/etcd/ca.crt")).CombinedOutput(); err == nil {
		t.Errorf("kube-apiserver-check trusted the etcd CA for the API server: %s", out)
	}

	if out, err := kubectl(certs.SuperAdminConf, "create", "namespace", "kubeforge-it"); err != nil {
		t.Fatalf("create namespace: %v: %s", err, out)
	}
	out, err := kubectl(certs.SuperAdminConf, "get", "namespace", "kubeforge-it", "-o", "jsonpath={.metadata.name}/{.status.phase}")
	if err != nil || out != "kubeforge-it/Active" {
		t.Fatalf("read back namespace: %v: %q", err, out)
	}
	// admin.conf's group has no rights until init binds it to cluster-admin.
	if out, err := kubectl(certs.AdminConf, "get", "namespaces"); err == nil || !strings.Contains(out, "Forbidden") {
		t.Fatalf("admin.conf before the binding: %v: %s", err, out)
	}
	if out, err := kubectl(certs.SuperAdminConf, "create", "clusterrolebinding", "kubeadm:cluster-admins",
		"--clusterrole=cluster-admin", "--group="+certs.ClusterAdminsGroup); err != nil {
		t.Fatalf("bind: %v: %s", err, out)
	}
	if out, err := kubectl(certs.AdminConf, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || out != certs.AdminCN {
		t.Fatalf("admin.conf whoami: %v: %s", err, out)
	}
	// The data really went through etcd: the key is there.
	raw, err := exec.Command(kube, "etcdctl", "--endpoints="+etcdURL, "--cacert="+pki("pki/etcd/ca.crt"),
		"--cert="+pki("pki/etcd/healthcheck-client.crt"), "--key="+pki("pki/etcd/healthcheck-client.key"),
		"get", "/registry/namespaces/kubeforge-it", "--keys-only").CombinedOutput()
	if err != nil || strings.TrimSpace(string(raw)) != "/registry/namespaces/kubeforge-it" {
		t.Fatalf("etcdctl get: %v: %s", err, raw)
	}
}
