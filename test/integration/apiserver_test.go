//go:build integration

// Package integration starts the bundled components as real processes on
// this machine. `make integration` (part of `make test`) builds them first
// and sets KUBEFORGE_BIN.
package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
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

// TestEtcdAndAPIServer proves the bundle is real: the multicall binary's
// etcd and kube-apiserver serve, over mutual TLS, what its kubectl asks.
func TestEtcdAndAPIServer(t *testing.T) {
	kube := kubeBinary(t)
	dir := t.TempDir()
	ca := newThrowawayCA(t, dir)
	ca.issue(t, "etcd", "etcd", nil, "127.0.0.1")
	ca.issue(t, "apiserver-etcd-client", "kube-apiserver-etcd-client", nil)
	ca.issue(t, "apiserver", "kube-apiserver", nil, "127.0.0.1", "10.96.0.1")
	ca.issue(t, "admin", "kubernetes-admin", []string{"system:masters"})
	ca.issue(t, "sa", "service-accounts", nil)

	clientPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	startProcess(t, kube, dir, "etcd",
		"--name=it", "--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=it="+peerURL,
		"--cert-file="+ca.path("etcd.crt"), "--key-file="+ca.path("etcd.key"),
		"--client-cert-auth", "--trusted-ca-file="+ca.path("ca.crt"))
	startProcess(t, kube, dir, "kube-apiserver",
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--etcd-servers="+etcdURL, "--etcd-cafile="+ca.path("ca.crt"),
		"--etcd-certfile="+ca.path("apiserver-etcd-client.crt"), "--etcd-keyfile="+ca.path("apiserver-etcd-client.key"),
		"--tls-cert-file="+ca.path("apiserver.crt"), "--tls-private-key-file="+ca.path("apiserver.key"),
		"--client-ca-file="+ca.path("ca.crt"), "--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+ca.path("sa.pub"), "--service-account-signing-key-file="+ca.path("sa.key"),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"))

	kubeconfig := filepath.Join(dir, "admin.conf")
	writeKubeconfig(t, kubeconfig, fmt.Sprintf("https://127.0.0.1:%d", apiPort), ca)
	kubectl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, kube, append([]string{"kubectl", "--kubeconfig=" + kubeconfig}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for {
		out, err := kubectl("get", "--raw", "/readyz")
		if err == nil && out == "ok" {
			break
		}
		last = out
		if time.Now().After(deadline) {
			t.Fatalf("apiserver not ready after 3m: %s", last)
		}
		time.Sleep(time.Second)
	}

	if out, err := kubectl("create", "namespace", "kubeforge-it"); err != nil {
		t.Fatalf("create namespace: %v: %s", err, out)
	}
	out, err := kubectl("get", "namespace", "kubeforge-it", "-o", "jsonpath={.metadata.name}/{.status.phase}")
	if err != nil || out != "kubeforge-it/Active" {
		t.Fatalf("read back namespace: %v: %q", err, out)
	}
	// The data really went through etcd: the key is there.
	raw, err := exec.Command(kube, "etcdctl", "--endpoints="+etcdURL, "--cacert="+ca.path("ca.crt"),
		"--cert="+ca.path("apiserver-etcd-client.crt"), "--key="+ca.path("apiserver-etcd-client.key"),
		"get", "/registry/namespaces/kubeforge-it", "--keys-only").CombinedOutput()
	if err != nil || strings.TrimSpace(string(raw)) != "/registry/namespaces/kubeforge-it" {
		t.Fatalf("etcdctl get: %v: %s", err, raw)
	}
}

func writeKubeconfig(t *testing.T, path, server string, ca *throwawayCA) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["it"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: ca.path("ca.crt")}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: ca.path("admin.crt"), ClientKey: ca.path("admin.key")}
	cfg.Contexts["it"] = &clientcmdapi.Context{Cluster: "it", AuthInfo: "admin"}
	cfg.CurrentContext = "it"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
}
