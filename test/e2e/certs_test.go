//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The certificate acceptance (make e2e-certs: 3 control planes and a
// worker behind the VIP). The cluster starts with 3-minute certificates
// and 4-minute kubelet certificates, so everything the issue asks about
// happens within minutes: the certificates expire and a renewal brings the
// cluster back; a rolling renewal while a client asks /readyz through the
// VIP every 200 ms; the running components serving the new certificates;
// the renewal timer; the kubelets' serving certificates rotating and
// approved; a renewal refused while a control plane is down.
const certsEnv = "KUBEFORGE_E2E_CERTS"

// certsCluster writes the cluster file with the given leaf validity.
func certsCluster(t *testing.T, hosts []string, validity string) string {
	t.Helper()
	p := haCluster(t, "certs", hosts)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "  hosts:\n", "  certificates:\n    validity: "+validity+"\n    kubeletValidity: 4m\n  hosts:\n", 1)
	out := filepath.Join(t.TempDir(), "certs-"+validity+".yaml")
	if err := os.WriteFile(out, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkReport is `certs check-expiration -f -o json`.
type checkReport struct {
	Certificates []struct {
		Node, Name, Serial, Status, RotatedBy string
		NotAfter                              time.Time
	} `json:"certificates"`
}

func checkExpiration(t *testing.T, file, state string) (checkReport, int) {
	t.Helper()
	r := run(t, nil, "certs", "check-expiration", "-f", file, "--state-dir", state, "-o", "json")
	var rep checkReport
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatalf("check-expiration json: %v\n%s", err, r)
	}
	return rep, r.code
}

// served is the leaf certificate a TLS port presents, read with the
// openssl command line (client certificate optional).
func served(t *testing.T, addr string, clientCert, clientKey string) *x509.Certificate {
	t.Helper()
	args := []string{"s_client", "-connect", addr, "-showcerts"}
	if clientCert != "" {
		args = append(args, "-cert", clientCert, "-key", clientKey)
	}
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	block, _ := pem.Decode(out[max(0, strings.Index(string(out), "-----BEGIN CERTIFICATE-----")):])
	if block == nil {
		t.Fatalf("openssl s_client -connect %s: no certificate:\n%s", addr, out)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func stateCert(t *testing.T, state, rel string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(state, rel))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// prober GETs a URL on a schedule until stopped, counting what failed.
type prober struct {
	requests, failures int
	first              []string
	// retried: answers of 503 or 429 with a Retry-After header (an API
	// server in its graceful shutdown asks its clients to come back),
	// retried once after that delay, as client-go does; a retry that
	// fails too is a failure.
	retried      int
	firstRetried []string
	stop         chan struct{}
	stopOnce     sync.Once
	done         sync.WaitGroup
}

// startProber asks /readyz through the VIP every 200 ms, anonymously, on
// a new connection each time.
func startProber(t *testing.T, caFile string) *prober {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	return probe(client, "https://"+haVIP+":6443/readyz", 200*time.Millisecond)
}

// probe GETs url with client every period; anything but 200 fails.
func probe(client *http.Client, url string, period time.Duration) *prober {
	p := &prober{stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(period):
			}
			p.requests++
			resp, err := client.Get(url)
			if err == nil && (resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests) {
				if after, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && after >= 0 && after <= 3 {
					resp.Body.Close()
					p.retried++
					if len(p.firstRetried) < 5 {
						p.firstRetried = append(p.firstRetried, time.Now().Format("15:04:05.000")+" "+resp.Status+", Retry-After: "+strconv.Itoa(after))
					}
					time.Sleep(time.Duration(after) * time.Second)
					resp, err = client.Get(url)
				}
			}
			switch {
			case err != nil:
				p.fail(err.Error())
			case resp.StatusCode != http.StatusOK:
				p.fail(resp.Status)
				resp.Body.Close()
			default:
				resp.Body.Close()
			}
		}
	}()
	return p
}

func (p *prober) fail(why string) {
	p.failures++
	if len(p.first) < 5 {
		p.first = append(p.first, time.Now().Format("15:04:05.000")+" "+why)
	}
}

// Stop ends the probing; a second Stop (a deferred one after the
// explicit one) is a no-op.
func (p *prober) Stop() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.done.Wait()
}

func TestCerts(t *testing.T) {
	if os.Getenv(certsEnv) != "1" {
		t.Skipf("the certificate acceptance needs 4 lab hosts and about fifteen minutes: run it with make e2e-certs (%s=1)", certsEnv)
	}
	names := hostNames()
	if len(names) < 4 {
		t.Fatalf("need 4 lab hosts (make lab-up N=4 CP=3), have %v", names)
	}
	names = names[:4]
	ctx := context.Background()
	for _, n := range names {
		if err := theLab.Recreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	cps, worker := names[:3], names[3]
	short := certsCluster(t, names, "3m")
	long := certsCluster(t, names, "10m")
	state := filepath.Join(t.TempDir(), "state")
	k := kube{file: long, state: state}
	r := mustRun(t, nil, "init", "-f", short, "--state-dir", state)
	t.Logf("init, 3-minute certificates: %s", doneLine(r.out))
	img := buildTestImage(t)
	importImage(t, worker, img)
	k.apply(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"talker","namespace":"default"},"spec":{"nodeName":"`+worker+`",
"containers":[{"name":"bb","image":"`+testImage+`","imagePullPolicy":"Never","command":["/bin/busybox","sh","-c","while true; do echo tick; sleep 5; done"]}]}}`)
	k.must(t, "wait", "--for=condition=Ready", "pod/talker", "--timeout=120s")
	kubeletServing := map[string]string{} // node -> serial of its first serving certificate
	var firstServingExpiry time.Time
	rep, _ := checkExpiration(t, long, state)
	for _, c := range rep.Certificates {
		if c.Name == "kubelet-serving" {
			kubeletServing[c.Node] = c.Serial
			if c.NotAfter.After(firstServingExpiry) {
				firstServingExpiry = c.NotAfter
			}
		}
	}

	t.Run("expired certificates: the API is down, renew brings the cluster back", func(t *testing.T) {
		var leafExpiry time.Time
		for _, c := range rep.Certificates {
			if c.Node == cps[0] && c.Name == "apiserver" {
				leafExpiry = c.NotAfter
			}
		}
		if wait := time.Until(leafExpiry) + 10*time.Second; wait > 0 {
			t.Logf("waiting %s for the certificates to expire", wait.Round(time.Second))
			time.Sleep(wait)
		}
		expired, code := checkExpiration(t, long, state)
		n := 0
		for _, c := range expired.Certificates {
			if c.Status == "EXPIRED" {
				n++
			}
		}
		if code != 1 || n == 0 {
			t.Fatalf("check-expiration after expiry: exit %d, %d expired", code, n)
		}
		if _, err := k.run("", "get", "nodes", "--request-timeout=5s"); err == nil {
			t.Fatal("the API still answers with expired certificates")
		}
		start := time.Now()
		r := mustRun(t, nil, "certs", "renew", "all", "-f", long, "--state-dir", state)
		t.Logf("%d certificates expired, the API was down; renew all -f recovered in %s: %s", n, time.Since(start).Round(100*time.Millisecond), doneLine(r.out))
		if !strings.Contains(r.out, "recovering instead") {
			t.Errorf("renew did not say it recovers:\n%s", r.out)
		}
		ready := k.must(t, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}")
		for _, n := range names {
			if !strings.Contains(ready, n+"=True") {
				t.Errorf("%s not Ready after the recovery: %s", n, ready)
			}
		}
	})

	t.Run("a rolling renewal: new certificates everywhere, no failed request through the VIP", func(t *testing.T) {
		before, _ := checkExpiration(t, long, state)
		old := map[string]time.Time{}
		for _, c := range before.Certificates {
			old[c.Node+"/"+c.Name] = c.NotAfter
		}
		p := startProber(t, filepath.Join(state, "pki", "ca.crt"))
		start := time.Now()
		r := mustRun(t, nil, "certs", "renew", "all", "-f", long, "--state-dir", state)
		took := time.Since(start)
		time.Sleep(time.Second)
		p.Stop()
		t.Logf("renew all -f of 3 control planes + 1 worker: %s (%s); /readyz through the VIP every 200 ms: %d requests, %d failures %v, %d answered with Retry-After and retried %v",
			took.Round(100*time.Millisecond), doneLine(r.out), p.requests, p.failures, p.first, p.retried, p.firstRetried)
		if p.failures != 0 {
			t.Errorf("%d of %d requests through the VIP failed during the renewal: %v", p.failures, p.requests, p.first)
		}
		after, code := checkExpiration(t, long, state)
		if code != 1 { // 10-minute certificates are within the 30-day window
			t.Errorf("check-expiration: exit %d", code)
		}
		advanced := 0
		for _, c := range after.Certificates {
			if c.RotatedBy != "kubeforge certs renew" || strings.HasPrefix(c.Node, "(") {
				continue
			}
			if !c.NotAfter.After(old[c.Node+"/"+c.Name]) {
				t.Errorf("%s on %s: NotAfter %s did not advance", c.Name, c.Node, c.NotAfter)
			}
			advanced++
		}
		t.Logf("%d certificates on the nodes have a later NotAfter", advanced)
		// Every leaf on every control plane chains to its CA (openssl).
		for _, cp := range cps {
			for f, ca := range map[string]string{"apiserver": "ca", "apiserver-kubelet-client": "ca", "front-proxy-client": "front-proxy-ca",
				"apiserver-etcd-client": "etcd/ca", "etcd/server": "etcd/ca", "etcd/peer": "etcd/ca", "etcd/healthcheck-client": "etcd/ca"} {
				leaf := filepath.Join(t.TempDir(), "leaf.crt")
				os.WriteFile(leaf, []byte(onHost(t, cp, "cat /etc/kubernetes/pki/"+f+".crt")), 0o600)
				out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(state, "pki", ca+".crt"), leaf).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					t.Errorf("%s %s: openssl verify: %s", cp, f, out)
				}
			}
		}
		ready := k.must(t, "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}")
		if strings.Count(ready, "=True") != len(names) {
			t.Errorf("nodes: %s", ready)
		}
	})

	t.Run("the running components serve the new certificates", func(t *testing.T) {
		hc, hk := filepath.Join(state, "pki", "etcd", "healthcheck-client.crt"), filepath.Join(state, "pki", "etcd", "healthcheck-client.key")
		for _, cp := range cps {
			h, _ := theLab.Host(cp)
			for _, tc := range []struct {
				port, file string
				client     bool
			}{{"6443", "apiserver.crt", false}, {"2379", "etcd/server.crt", true}, {"2380", "etcd/peer.crt", true}} {
				want := stateCert(t, state, filepath.Join("nodes", cp, "pki", tc.file))
				c, key := "", ""
				if tc.client {
					c, key = hc, hk
				}
				got := served(t, h.IP+":"+tc.port, c, key)
				if got.SerialNumber.Cmp(want.SerialNumber) != 0 {
					t.Errorf("%s:%s serves serial %x, the renewed %s is %x", cp, tc.port, got.SerialNumber, tc.file, want.SerialNumber)
				} else {
					t.Logf("%s:%s serves the renewed %s, serial %x", cp, tc.port, tc.file, got.SerialNumber)
				}
			}
		}
		for _, n := range names {
			h, _ := theLab.Host(n)
			got := served(t, h.IP+":10250", "", "")
			file := onHost(t, n, "sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' /var/lib/kubelet/pki/kubelet-server-current.pem | head -n $(grep -n 'END CERTIFICATE' /var/lib/kubelet/pki/kubelet-server-current.pem | head -1 | cut -d: -f1)")
			block, _ := pem.Decode([]byte(file))
			if block == nil {
				t.Errorf("%s: no serving certificate file", n)
				continue
			}
			want, _ := x509.ParseCertificate(block.Bytes)
			if got.SerialNumber.Cmp(want.SerialNumber) != 0 {
				t.Errorf("%s:10250 serves serial %x, its current certificate file holds %x", n, got.SerialNumber, want.SerialNumber)
			}
		}
	})

	t.Run("the renewal timer", func(t *testing.T) {
		mustRun(t, nil, "certs", "renew", "--install-timer", "-f", long, "--state-dir", state)
		for _, cp := range cps {
			if out := onHost(t, cp, "systemctl list-timers --all --no-pager kubeforge-certs-renew.timer"); !strings.Contains(out, "kubeforge-certs-renew.timer") {
				t.Errorf("%s: list-timers:\n%s", cp, out)
			}
		}
		cp := cps[1]
		before := onHost(t, cp, "sed -n '/BEGIN/,/END/p' /etc/kubernetes/pki/apiserver.crt | openssl x509 -noout -serial 2>/dev/null || md5sum /etc/kubernetes/pki/apiserver.crt")
		p := startProber(t, filepath.Join(state, "pki", "ca.crt"))
		out := onHost(t, cp, "systemctl start kubeforge-certs-renew.service && journalctl -u kubeforge-certs-renew --no-pager -o short-precise | tail -30")
		p.Stop()
		after := onHost(t, cp, "sed -n '/BEGIN/,/END/p' /etc/kubernetes/pki/apiserver.crt | openssl x509 -noout -serial 2>/dev/null || md5sum /etc/kubernetes/pki/apiserver.crt")
		if before == after || !strings.Contains(out, "renewed pki/apiserver.crt") || !strings.Contains(out, "restarted kube-apiserver") {
			t.Errorf("the timer's service on %s did not renew (before %q, after %q):\n%s", cp, before, after, out)
		}
		t.Logf("the timer's service on %s renewed its certificates; %d requests through the VIP meanwhile, %d failed %v", cp, p.requests, p.failures, p.first)
		if p.failures != 0 {
			t.Errorf("%d requests failed during the timer's renewal; its journal:\n%s", p.failures, out)
			for _, n := range cps {
				t.Logf("%s: keepalived and kube-apiserver meanwhile:\n%s", n, onHost(t, n,
					"journalctl -u keepalived -u kube-apiserver -u etcd --no-pager -o short-precise --since '-3min' | grep -iE 'state|transition|shutdown|terminat|readyz|leader|elected|error' | tail -40"))
			}
		}
	})

	t.Run("kubelet serving certificates rotate, are approved, and logs keep working", func(t *testing.T) {
		if wait := time.Until(firstServingExpiry) + 15*time.Second; wait > 0 {
			t.Logf("waiting %s for the first serving certificates to expire", wait.Round(time.Second))
			time.Sleep(wait)
		}
		// A renewal approves what the kubelets asked for (the timer does
		// the same daily); with 4-minute certificates they ask every few
		// minutes, so keep approving until each serves a new one.
		eventually(t, 3*time.Minute, "every kubelet on a new serving certificate", func() string {
			run(t, nil, "certs", "renew", "admin.conf", "-f", long, "--state-dir", state)
			now, _ := checkExpiration(t, long, state)
			for _, c := range now.Certificates {
				if c.Name == "kubelet-serving" && (c.Serial == kubeletServing[c.Node] || c.Status == "EXPIRED") {
					return fmt.Sprintf("%s still serves %s (%s)", c.Node, c.Serial, c.Status)
				}
			}
			return ""
		})
		if logs := k.must(t, "logs", "talker", "--tail=1"); logs != "tick" {
			t.Errorf("kubectl logs after the first serving certificate expired: %q", logs)
		}
		if _, err := k.run("", "exec", "talker", "--", "/bin/busybox", "true"); err != nil {
			t.Errorf("kubectl exec: %v", err)
		}
	})

	t.Run("a control plane down: refused, nothing changed; started again, renewal completes", func(t *testing.T) {
		down := cps[2]
		if err := theLab.Stop(ctx, down); err != nil {
			t.Fatal(err)
		}
		before, _ := checkExpiration(t, long, state)
		stateBefore := stateCert(t, state, "nodes/"+cps[0]+"/pki/apiserver.crt")
		r := run(t, nil, "certs", "renew", "all", "-f", long, "--state-dir", state)
		if r.code == 0 || !strings.Contains(r.err, down) {
			t.Errorf("renewal with %s down: %s", down, r)
		}
		t.Logf("with %s stopped: exit %d: %s", down, r.code, lastLine(r.err))
		after, _ := checkExpiration(t, long, state)
		serials := func(rep checkReport) string {
			var s []string
			for _, c := range rep.Certificates {
				if c.Node != down {
					s = append(s, c.Node+c.Name+c.Serial)
				}
			}
			return strings.Join(s, ",")
		}
		if serials(before) != serials(after) {
			t.Error("a refused renewal changed certificates on the hosts")
		}
		if now := stateCert(t, state, "nodes/"+cps[0]+"/pki/apiserver.crt"); !now.Equal(stateBefore) {
			t.Error("a refused renewal changed the state directory")
		}
		if err := theLab.Start(ctx, down); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Minute, down+" healthy again", func() string {
			if s, _ := k.run("", "get", "node", down, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"); s != "True" {
				return "Ready=" + s
			}
			return ""
		})
		r = mustRun(t, nil, "certs", "renew", "all", "-f", long, "--state-dir", state)
		t.Logf("after starting %s: %s", down, doneLine(r.out))
	})
}
