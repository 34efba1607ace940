package config

// Example is the commented cluster file `kubeforge config example`
// prints. A test parses it, so it stays valid.
const Example = `# A kubeforge cluster file. Every field but the hosts has a default.
apiVersion: kubeforge.io/v1alpha1
kind: Cluster
metadata:
  # Names the state directory (~/.kubeforge/<name>): PKI, known_hosts, admin.conf, logs.
  name: prod

spec:
  # How kubeforge logs in; each host may override any field under its own "ssh".
  ssh:
    user: root                      # any user with sudo works too
    port: 22
    keyPath: ~/.ssh/id_ed25519      # without a key (and no password), the ssh-agent is used
    # passphraseEnv: KEY_PASSPHRASE  # env variable with the key's passphrase (else asked on the terminal)
    # passwordEnv: SSH_PASSWORD      # env variable with a login password
    # sudoPasswordEnv: SUDO_PASSWORD # env variable with the sudo password, if sudo asks for one
    # bastion: jump@bastion.example.com:22
    connectTimeout: 10s

  hosts:
    - name: cp1                     # the node name: a lowercase DNS label
      address: 10.0.0.11            # where kubeforge connects; also the node address unless internalAddress is set
      roles: [control-plane]        # control-plane, etcd, worker; etcd defaults to the control planes
    - name: cp2
      address: 10.0.0.12
      roles: [control-plane]
    - name: cp3
      address: 10.0.0.13
      roles: [control-plane]
    - name: w1
      address: 10.0.0.21
      roles: [worker]
      labels:
        topology.kubernetes.io/zone: a

  controlPlane:
    # A virtual IP held by keepalived on one control plane; a free address in their network.
    vip: 10.0.0.100
    # endpoint: api.example.com:6443  # default: the VIP, or the first control plane, port 6443
    certSANs: [api.example.com]
    port: 6443

  networking:
    podCIDR: 10.244.0.0/16          # each node gets a /24 of it
    serviceCIDR: 10.96.0.0/12
    dnsDomain: cluster.local
    backend: vxlan                  # flannel: vxlan, or host-gw when all nodes share one L2 network
    proxyMode: iptables             # or ipvs, where the kernel has it
    # upstreamDNS: [10.0.0.2]       # CoreDNS forwards other names here (default: the hosts' resolvers)

  certificates:
    keyAlgorithm: ecdsa-p256        # or rsa-2048, rsa-4096
    caValidity: 3650d
    validity: 365d                  # renew with 'kubeforge certs renew all -f cluster.yaml'
    kubeletValidity: 365d           # the kubelets' certificates: they renew them themselves

  kubelet:
    allowSwap: false
    maxPods: 110

  security:
    podSecurity:                    # Pod Security Admission, where a namespace's labels say nothing
      enforce: baseline             # privileged, baseline or restricted
      warn: restricted
      audit: restricted
      exemptNamespaces: [kube-system]
    audit:
      enabled: true                 # every API request in /var/log/kubernetes/audit/audit.log
      maxSize: 100                  # MB, then rotated; 10 files and 30 days are kept
`
