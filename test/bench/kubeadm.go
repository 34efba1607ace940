package main

// The reference path of the bench: stock kubeadm v1.35.4, built from the
// same Kubernetes module as bin/kube (make bench-kubeadm), on a fresh lab
// host, timed the way kubeforge's init is: from the start of copying files
// to the host, apt included, to the node Ready and CoreDNS available, read
// with kubectl on the host. Bench-only: nothing here goes into the bundle.
//
// What the host gets, and why:
//   - the same OS packages and containerd settings kubeforge's runtime phase
//     installs (restrict_oom_score_adj when the host cannot lower
//     oom_score_adj, SystemdCgroup), because the lab needs them to run any
//     container; the sandbox image is the pause kubeadm names;
//   - kubeadm, and the kubelet and kubectl from the bundle's bin/kube, with
//     the kubelet unit and drop-in a kubeadm package installs;
//   - kubeadm's images, built from the same binaries (kubeadm_images.go)
//     and imported with ctr, so preflight's pull finds them present;
//   - `kubeadm init --config` with a KubeletConfiguration (systemd cgroups,
//     failCgroupV1: false on the lab's cgroup v1) and a
//     KubeProxyConfiguration (iptables mode, conntrack maxPerCore 0: a
//     container cannot write nf_conntrack_max), then the control-plane
//     taint removed so CoreDNS can run on the only node;
//   - the pod network as kubeforge runs it: the bundle's own flanneld as a
//     systemd service on the host (kube subnet manager, the node's own
//     kubeconfig) and the same CNI plugins and conflist. Flannel's upstream
//     manifest would need flannel's images, which are not built from this
//     repository; running the same flanneld binary the same way keeps the
//     network identical on both paths, so the bench compares the
//     installers, not two networks. Like `kubectl apply` of a network
//     manifest after init, it starts once init has returned.
//
// apt runs while the files upload: what a careful script would do, so the
// reference is not made slow.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubeforge/kubeforge/internal/atomicfile"
	"github.com/kubeforge/kubeforge/internal/config"
	"github.com/kubeforge/kubeforge/templates"
	"github.com/kubeforge/kubeforge/test/lab"
)

// kubeadmMeasure is what the reference path took, from t0 (the start of
// the upload).
type kubeadmMeasure struct {
	wall      time.Duration // until the last command (flanneld started) returned
	nodeReady time.Duration // the node Ready
	dnsReady  time.Duration // the coredns Deployment with availableReplicas > 0
	steps     string        // time per step: "upload 2.1s, apt 6.0s, ..."
}

// kubeadmRuntimePackages are what kubeforge's runtime phase installs
// (phases/runtime.go runtimePackages).
var kubeadmRuntimePackages = []string{"containerd", "runc", "iptables", "conntrack", "socat"}

// kubeadmIgnoredPreflight are the preflight checks the lab cannot satisfy,
// one by one. The lab's hosts are containers: no kernel configuration to
// read and cgroup v1 (SystemVerification).
var kubeadmIgnoredPreflight = []string{"SystemVerification"}

// benchDir holds what the bench builds: kubeadm and its images.
const benchDir = ".bench"

// runKubeadm installs a one-node cluster with kubeadm on host, a fresh lab
// host, and measures it. dir is a scratch directory for the staged files.
func runKubeadm(ctx context.Context, root string, l *lab.Lab, host string, dir string) (kubeadmMeasure, error) {
	var m kubeadmMeasure
	h, err := l.Host(host)
	if err != nil {
		return m, err
	}
	kubeadm := filepath.Join(root, benchDir, "kubeadm")
	if _, err := os.Stat(kubeadm); err != nil {
		return m, fmt.Errorf("%w (make bench-kubeadm)", err)
	}
	images, _, v, err := buildKubeadmImages(ctx, filepath.Join(root, "dist"), filepath.Join(root, "bin"), l.Image, filepath.Join(root, benchDir, "images"))
	if err != nil {
		return m, fmt.Errorf("kubeadm images: %w", err)
	}
	stage := filepath.Join(dir, "kubeadm-stage")
	if err := stageKubeadm(root, stage, kubeadm, images, v, h, l.Gateway); err != nil {
		return m, err
	}
	logFile := filepath.Join(root, benchDir, "kubeadm-"+host+".log")
	logw, err := os.Create(logFile)
	if err != nil {
		return m, err
	}
	defer logw.Close()
	ssh := func(ctx context.Context, command string, stdin io.Reader, out io.Writer) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "ssh", "-i", l.KeyFile(), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", l.SSHUser+"@"+h.IP, command)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, out, out
		cmd.WaitDelay = 5 * time.Second
		return cmd
	}
	var logMu sync.Mutex
	logTo := func(prefix string) io.Writer { return &prefixWriter{mu: &logMu, w: logw, prefix: prefix} }

	// t0: the upload starts; the node and CoreDNS are watched from now.
	start := time.Now()
	watchCtx, stopWatch := context.WithTimeout(ctx, 10*time.Minute)
	defer stopWatch()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.nodeReady, m.dnsReady = watch(watchCtx, l, host, []string{host}, start)
	}()

	var upload, apt time.Duration
	var uploadErr, aptErr error
	var par sync.WaitGroup
	par.Add(2)
	go func() {
		defer par.Done()
		tarCmd := exec.CommandContext(ctx, "tar", "-C", stage, "-cf", "-", ".")
		pipe, err := tarCmd.StdoutPipe()
		if err != nil {
			uploadErr = err
			return
		}
		tarCmd.Stderr = logTo("upload: ")
		recv := ssh(ctx, "tar -C / --no-overwrite-dir -xf -", pipe, logTo("upload: "))
		if err := tarCmd.Start(); err != nil {
			uploadErr = err
			return
		}
		uploadErr = errors.Join(recv.Run(), tarCmd.Wait())
		upload = time.Since(start)
	}()
	go func() {
		defer par.Done()
		pkgs := strings.Join(kubeadmRuntimePackages, " ")
		aptErr = ssh(ctx, "export DEBIAN_FRONTEND=noninteractive; apt-get install -y --no-install-recommends "+pkgs+
			" || (apt-get update -q && apt-get install -y --no-install-recommends "+pkgs+")", nil, logTo("apt: ")).Run()
		apt = time.Since(start)
	}()
	par.Wait()
	if err := errors.Join(uploadErr, aptErr); err != nil {
		return m, fmt.Errorf("kubeadm path on %s: upload/apt: %w (log %s)", host, err, logFile)
	}
	// The rest runs on the host; the script prints "step NAME SECONDS".
	var out strings.Builder
	runErr := ssh(ctx, "bash /root/kubeadm-bench/run.sh", nil, io.MultiWriter(&out, logTo("host: "))).Run()
	m.wall = time.Since(start)
	if runErr != nil {
		return m, fmt.Errorf("kubeadm path on %s: %w (log %s)", host, runErr, logFile)
	}
	wg.Wait()
	if m.nodeReady == 0 || m.dnsReady == 0 {
		return m, fmt.Errorf("kubeadm path on %s: node Ready after %s, CoreDNS available after %s: not both within the deadline (log %s)",
			host, m.nodeReady, m.dnsReady, logFile)
	}
	r := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
	steps := []string{"upload " + r(upload), "apt " + r(apt)}
	for _, sm := range regexp.MustCompile(`(?m)^step (\S+) ([0-9.]+)$`).FindAllStringSubmatch(out.String(), -1) {
		secs, _ := strconv.ParseFloat(sm[2], 64)
		d := time.Duration(secs * float64(time.Second))
		steps = append(steps, sm[1]+" "+r(d))
	}
	m.steps = strings.Join(steps, ", ")
	return m, nil
}

// stageKubeadm lays out, under stage, the files the host gets, at their
// paths on the host.
func stageKubeadm(root, stage, kubeadm, images string, v kubeadmVersions, h lab.Host, gateway string) error {
	if err := os.RemoveAll(stage); err != nil {
		return err
	}
	dist := filepath.Join(root, "dist")
	const work = "/root/kubeadm-bench"
	links := map[string]string{ // host path -> file here
		"/usr/bin/kubeadm":        kubeadm,
		"/usr/local/bin/kube":     filepath.Join(dist, "bin", "kube"),
		"/usr/local/bin/flanneld": filepath.Join(dist, "bin", "flanneld"),
		"/opt/cni/bin/bridge":     filepath.Join(dist, "cni", "bin", "bridge"),
		"/opt/cni/bin/host-local": filepath.Join(dist, "cni", "bin", "host-local"),
		"/opt/cni/bin/loopback":   filepath.Join(dist, "cni", "bin", "loopback"),
		"/opt/cni/bin/portmap":    filepath.Join(dist, "cni", "bin", "portmap"),
		"/opt/cni/bin/flannel":    filepath.Join(dist, "cni", "bin", "flannel"),
		work + "/images.tar":      images,
	}
	for dst, src := range links {
		if err := linkOrCopy(src, filepath.Join(stage, dst)); err != nil {
			return err
		}
	}
	for _, name := range []string{"kubelet", "kubectl"} {
		p := filepath.Join(stage, "usr", "bin", name)
		if err := os.Symlink("/usr/local/bin/kube", p); err != nil {
			return err
		}
	}

	// The OS's containerd 1.6 from apt, as kubeadm users get it: its
	// configuration format is version 2, the template kubeforge keeps
	// for hosts that run the OS's containerd.
	containerd, err := templates.Render("containerd/config-1.x.toml.tmpl", map[string]any{
		"SandboxImage":        "registry.k8s.io/pause:" + kubeadmPauseTag,
		"RestrictOOMScoreAdj": "@RESTRICT_OOM_SCORE_ADJ@", // run.sh detects it, as the runtime phase does
		"SystemdCgroup":       true,
	})
	if err != nil {
		return err
	}
	netConf, err := templates.Render("cni/net-conf.json.tmpl", map[string]string{"PodCIDR": config.DefaultPodCIDR, "Backend": config.DefaultBackend})
	if err != nil {
		return err
	}
	conflist, err := templates.Render("cni/10-flannel.conflist.tmpl", nil)
	if err != nil {
		return err
	}
	files := map[string]string{
		"/etc/systemd/system/kubelet.service":                   kubeletUnit,
		"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": kubeadmDropIn,
		"/etc/systemd/system/flanneld.service":                  fmt.Sprintf(flanneldUnit, h.Name, h.IP),
		"/etc/kube-flannel/net-conf.json":                       string(netConf),
		"/etc/modules-load.d/k8s.conf":                          "overlay\nbr_netfilter\n",
		"/etc/sysctl.d/99-kubernetes.conf":                      "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n",
		work + "/containerd.toml":                               string(containerd),
		work + "/10-flannel.conflist":                           string(conflist),
		work + "/flannel-rbac.yaml":                             flannelRBAC,
		work + "/kubeadm.yaml":                                  kubeadmConfig(v, h),
		kubeadmResolvConf:                                       "nameserver " + gateway + "\n",
		work + "/run.sh":                                        kubeadmScript,
	}
	for dst, data := range files {
		p := filepath.Join(stage, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return atomicfile.Copy(src, dst, 0o755)
}

// kubeadmConfig is kubeadm's configuration for a one-node cluster on h.
// etcd and CoreDNS carry the versions the bundle really has (kubeadm
// v1.35.4 defaults to etcd 3.6.6-0 and CoreDNS v1.13.1), named in
// kubeadm's own tag schemes.
func kubeadmConfig(v kubeadmVersions, h lab.Host) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: %[1]s
  bindPort: 6443
nodeRegistration:
  name: %[2]s
  criSocket: unix:///run/containerd/containerd.sock
  ignorePreflightErrors: [%[3]s]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %[4]s
networking:
  podSubnet: %[5]s
  serviceSubnet: %[6]s
  dnsDomain: %[7]s
etcd:
  local:
    imageTag: %[8]s
dns:
  imageTag: %[9]s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failCgroupV1: false
resolvConf: %[10]s
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
conntrack:
  maxPerCore: 0
`, h.IP, h.Name, strings.Join(kubeadmIgnoredPreflight, ", "), v.Kubernetes,
		config.DefaultPodCIDR, config.DefaultServiceCIDR, config.DefaultDNSDomain, v.EtcdTag, v.CoreDNSTag, kubeadmResolvConf)
}

// kubeadmResolvConf is the resolver file the kubelet gives pods on the
// kubeadm path. The lab hosts' /etc/resolv.conf names Docker's 127.0.0.11:
// inside a pod that is the pod itself, and kubeadm's CoreDNS (forward .
// /etc/resolv.conf, with the loop plugin) would detect a forwarding loop
// and crash-loop; a kubeadm user sets resolvConf the same way on such a
// host (as for systemd-resolved's stub). The lab's gateway answers no DNS,
// which leaves kubeadm's pods where kubeforge's are on the lab: cluster
// names only (kubeforge gives pods no resolver it cannot reach).
const kubeadmResolvConf = "/etc/kubernetes/bench-resolv.conf"

// The kubelet's unit and kubeadm's drop-in, as the kubelet and kubeadm
// packages install them.
const kubeletUnit = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

const kubeadmDropIn = `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

// flanneldUnit runs flanneld with the arguments kubeforge's cni phase
// gives it (phases/cni.go); the node's kubeconfig is kubeadm's kubelet.conf.
const flanneldUnit = `[Unit]
Description=flanneld: the pod network between nodes
After=network-online.target kubelet.service
Wants=network-online.target

[Service]
Type=notify
Environment=NODE_NAME=%[1]s
ExecStart=/usr/local/bin/flanneld --kube-subnet-mgr --kubeconfig-file=/etc/kubernetes/kubelet.conf --net-config-path=/etc/kube-flannel/net-conf.json --iface=%[2]s --ip-masq
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`

// flannelRBAC lets flanneld, running as the node, read every node's pod
// subnet and annotate its own node (NodeRestriction keeps it to its own);
// the Node authorizer alone lets a node read only its own Node. kubeforge
// binds the same rules to system:nodes (templates/bootstrap); flannel's
// own manifest binds them to its ServiceAccount.
const flannelRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: bench:flannel
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [nodes/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: bench:flannel
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: bench:flannel
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:nodes
`

// kubeadmScript runs on the host once the files are there and the packages
// installed. Each step prints "step NAME SECONDS".
const kubeadmScript = `#!/bin/bash
set -euo pipefail
W=/root/kubeadm-bench
t=$EPOCHREALTIME
step() { local now=$EPOCHREALTIME; echo "step $1 $(echo "$now - $t" | awk '{print $1 - $3}')"; t=$now; }

# The runtime, configured as kubeforge's runtime phase configures it here.
restrict=false
sh -c 'echo -999 > /proc/self/oom_score_adj' 2>/dev/null || restrict=true
mkdir -p /etc/containerd
sed "s/@RESTRICT_OOM_SCORE_ADJ@/$restrict/" $W/containerd.toml > /etc/containerd/config.toml
modprobe overlay
modprobe br_netfilter
sysctl -q -p /etc/sysctl.d/99-kubernetes.conf
systemctl restart containerd
until ctr -n k8s.io version >/dev/null 2>&1; do sleep 0.1; done
step runtime

ctr -n k8s.io images import $W/images.tar >/dev/null
step images

systemctl daemon-reload
systemctl enable kubelet 2>/dev/null
kubeadm init --config $W/kubeadm.yaml
step kubeadm-init

export KUBECONFIG=/etc/kubernetes/admin.conf
kubectl taint nodes --all node-role.kubernetes.io/control-plane-
kubectl apply -f $W/flannel-rbac.yaml
install -D -m 644 $W/10-flannel.conflist /etc/cni/net.d/10-flannel.conflist
systemctl enable --no-block --now flanneld 2>/dev/null
step network
`

// prefixWriter writes each line to w with a prefix.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// runKubeadmOnly is `go run ./test/bench -only kubeadm`: the reference
// path alone on the lab's first host, re-created fresh.
func runKubeadmOnly(root string) error {
	ctx := context.Background()
	l, err := lab.Load(root)
	if err != nil {
		return fmt.Errorf("%w (make lab-up)", err)
	}
	node := l.Hosts()[0]
	if err := l.Recreate(ctx, node.Name); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kubeforge-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m, err := runKubeadm(ctx, root, l, node.Name, dir)
	if err != nil {
		return err
	}
	fmt.Print(renderKubeadm(m, node.Name))
	return nil
}

func renderKubeadm(m kubeadmMeasure, node string) string {
	r := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
	var b strings.Builder
	fmt.Fprintf(&b, "kubeadm reference path on %s (fresh host, from the start of the upload, apt included):\n", node)
	fmt.Fprintf(&b, "  all steps done     %s\n  node Ready         %s\n  CoreDNS available  %s\n", r(m.wall), r(m.nodeReady), r(m.dnsReady))
	fmt.Fprintf(&b, "  steps: %s\n", m.steps)
	return b.String()
}
