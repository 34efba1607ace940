//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeforge/kubeforge/certs"
)

// checkSecurity is the rest of issue 19's acceptance on the CIS cluster
// (3 control planes behind the VIP, 2 workers): Secrets encrypted in etcd,
// a key rotation under a client loop through the VIP, the audit log, Pod
// Security Admission. cps are the control planes, workers the others.
func checkSecurity(t *testing.T, k kube, cps, workers []string) {
	const secret, password = "e2e-enc", "hunter2-e2e"
	k.run("", "delete", "secret", secret, "--ignore-not-found")
	k.must(t, "create", "secret", "generic", secret, "--from-literal=password="+password)

	t.Run("encrypted-at-rest", func(t *testing.T) {
		writer := stateKey(t, k.state)
		stored := storedSecrets(t, cps[0])
		v, ok := stored["/registry/secrets/default/"+secret]
		switch {
		case !ok:
			t.Fatalf("no /registry/secrets/default/%s in etcd (keys: %d)", secret, len(stored))
		case !strings.HasPrefix(v, writer.StoragePrefix()):
			t.Fatalf("stored as %q, want the prefix %s", v[:min(40, len(v))], writer.StoragePrefix())
		case strings.Contains(v, password):
			t.Fatal("the password is in etcd in clear")
		}
		t.Logf("default/%s in etcd starts %q", secret, writer.StoragePrefix())
	})

	t.Run("audit", func(t *testing.T) {
		// The request went through the VIP to one of the API servers.
		var found []string
		for _, cp := range cps {
			out := onHost(t, cp, `grep -h '"verb":"create"' /var/log/kubernetes/audit/audit*.log | grep '"resource":"secrets"' | grep '"name":"`+secret+`"' || true`)
			found = append(found, strings.Fields(out)...)
			if n := strings.TrimSpace(onHost(t, cp, "cat /var/log/kubernetes/audit/audit*.log | grep -c "+password+" || true")); n != "0" {
				t.Errorf("%s: the Secret's value is in the audit log (%s lines)", cp, n)
			}
		}
		if len(found) == 0 {
			t.Fatalf("no audit event for the creation of secret %s on %v", secret, cps)
		}
		if !strings.Contains(strings.Join(found, " "), `"level":"Metadata"`) {
			t.Errorf("the creation of a Secret is not at Metadata level: %s", strings.Join(found, " "))
		}
	})

	t.Run("pod-security", func(t *testing.T) {
		pod := func(ns string) string {
			return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"e2e-priv","namespace":"` + ns + `"},"spec":{"nodeName":"` + workers[0] + `",` +
				`"containers":[{"name":"bb","image":"` + testImage + `","imagePullPolicy":"Never","command":["/bin/busybox","sleep","3600"],"securityContext":{"privileged":true}}]}}`
		}
		out, err := k.run(pod("default"), "apply", "-f", "-")
		if err == nil || !strings.Contains(out, "violates PodSecurity") {
			t.Fatalf("a privileged pod in default was not refused by Pod Security Admission: %v\n%s", err, out)
		}
		t.Logf("refused in default: %s", firstLine(out))
		k.run("", "delete", "namespace", "e2e-priv", "--ignore-not-found", "--timeout=120s")
		k.apply(t, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"e2e-priv","labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}`)
		defer k.run("", "delete", "namespace", "e2e-priv", "--wait=false")
		k.apply(t, pod("e2e-priv"))
		waitFor(t, k, "e2e-priv", "wait", "--for=condition=Ready", "pod/e2e-priv", "--timeout=120s")
	})

	t.Run("rotate-key", func(t *testing.T) {
		before := stateKey(t, k.state)
		ready := startProber(t, filepath.Join(k.state, "pki", "ca.crt"))
		api := startAPIProber(t, filepath.Join(k.state, "admin.conf"), "/api/v1/namespaces")
		t0 := time.Now()
		r := run(t, nil, "secrets", "rotate-key", "-f", k.file, "--state-dir", k.state)
		took := time.Since(t0)
		ready.Stop()
		api.Stop()
		if r.code != 0 {
			t.Fatalf("secrets rotate-key: exit %d\n%s", r.code, r.out)
		}
		t.Logf("rotate-key took %s; through the VIP: /readyz %d requests, %d failed; GET /api/v1/namespaces %d requests, %d failed",
			took.Round(100*time.Millisecond), ready.requests, ready.failures, api.requests, api.failures)
		if ready.failures+api.failures > 0 {
			t.Errorf("failed requests through the VIP: %v %v", ready.first, api.first)
		}
		after := stateKey(t, k.state)
		if after.Name == before.Name {
			t.Fatalf("the key is still %s", before.Name)
		}
		stored := storedSecrets(t, cps[0])
		for key, v := range stored {
			if !strings.HasPrefix(v, after.StoragePrefix()) {
				t.Errorf("%s is stored as %q, not with the new key %s", key, v[:min(40, len(v))], after.Name)
			}
		}
		// A list fails when one Secret cannot be decrypted: every one reads.
		names := strings.Fields(k.must(t, "get", "secrets", "-A", "-o", "name"))
		if len(names) != len(stored) {
			t.Errorf("the API lists %d Secrets, etcd holds %d", len(names), len(stored))
		}
		t.Logf("after the rotation: %d Secrets in etcd, all under %s, all %d read through the API", len(stored), after.Name, len(names))
		got := k.must(t, "get", "secret", secret, "-o", "jsonpath={.data.password}")
		if got != base64.StdEncoding.EncodeToString([]byte(password)) {
			t.Errorf("secret %s reads %q after the rotation", secret, got)
		}
		for _, cp := range cps {
			if n := strings.TrimSpace(onHost(t, cp, "grep -c 'name: kubeforge-' /etc/kubernetes/encryption-config.yaml")); n != "1" {
				t.Errorf("%s: %s keys in its encryption configuration, want 1", cp, n)
			}
		}
		if st := run(t, nil, "status", "-f", k.file, "--state-dir", k.state); !strings.Contains(st.out, "Secrets encrypted at rest with key "+after.Name) {
			t.Errorf("status does not show the key:\n%s", st.out)
		}
	})
}

// checkAuditRotation re-runs init with a 1 MB audit log, sends enough
// requests to one API server to fill it, and checks the log rotated.
func checkAuditRotation(t *testing.T, k kube, cp, address string) {
	data, err := os.ReadFile(k.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.file, append(data, "  security:\n    audit:\n      maxSize: 1\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "init", "-f", k.file, "--state-dir", k.state)
	cfg, err := clientcmd.BuildConfigFromFlags("https://"+address+":6443", filepath.Join(k.state, "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The restart on the new limit may rotate a log already larger: only
	// a file rotated after that counts.
	rotated := func() string { return onHost(t, cp, "ls /var/log/kubernetes/audit/ | grep '^audit-' || true") }
	before := strings.Fields(rotated())
	for i := 0; i < 6000; i++ {
		resp, err := client.Get(cfg.Host + "/api/v1/namespaces/kube-system/configmaps?limit=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if i%500 == 499 && len(strings.Fields(rotated())) > len(before) {
			t.Logf("after %d requests: %s", i+1, strings.Join(strings.Fields(onHost(t, cp, "ls -l /var/log/kubernetes/audit/")), " "))
			return
		}
	}
	t.Errorf("%s: the audit log did not rotate at 1 MB:\n%s", cp, onHost(t, cp, "ls -l /var/log/kubernetes/audit/"))
}

// stateKey is the key that writes, from the state directory.
func stateKey(t *testing.T, state string) certs.EncryptionKey {
	t.Helper()
	e, err := certs.ReadEncryption(certs.Dir(state))
	if err != nil || e == nil {
		t.Fatalf("the state directory's encryption configuration: %v, %v", e, err)
	}
	w, ok := e.Writer()
	if !ok {
		t.Fatal("no key writes")
	}
	return w
}

// storedSecrets are etcd's Secrets, as stored: key -> raw value.
func storedSecrets(t *testing.T, cp string) map[string]string {
	t.Helper()
	var resp struct {
		Kvs []struct{ Key, Value string } `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(onHost(t, cp, etcdctlOnCP+"get --prefix /registry/secrets/ -w json")), &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		key, _ := base64.StdEncoding.DecodeString(kv.Key)
		value, _ := base64.StdEncoding.DecodeString(kv.Value)
		out[string(key)] = string(value)
	}
	if len(out) == 0 {
		t.Fatal("no Secrets in etcd")
	}
	return out
}

// startAPIProber GETs an API path through the VIP as the admin every
// 100 ms, over the connections client-go keeps open.
func startAPIProber(t *testing.T, kubeconfig, path string) *prober {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("https://"+haVIP+":6443", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 3 * time.Second
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return probe(client, cfg.Host+path, 100*time.Millisecond)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
